// The package as a user gets it: `npm pack` holds dist/, the page's files (src/web/, which `chatwright serve` serves),
// the native sources and build script, README and LICENSE and
// no tests or benches; `npm install ./chatwright-x.y.z.tgz` in an empty folder (offline, from the npm cache that
// `npm ci` filled) builds the native addon through the install script, `npx chatwright` runs, a tiny tokenizer ->
// data -> pretrain -> generate path works through the installed CLI, the installed `serve` serves its page, and `import ... from 'chatwright'` works with its
// type declarations. Without a compiler the install script says so in one line and chatwright runs on the JS backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 240_000, ...opts });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), out, error: r.error };
}

test('npm pack, then npm install of the tarball in an empty folder: CLI, native build, tiny pretrain + generate, library import with types', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-package-'));
  try {
    // ---- the tarball (dist/ is built by `npm test` before the tests run, so no prepare script here)
    const pack = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], { cwd: ROOT });
    assert.equal(pack.status, 0, pack.out);
    const files: string[] = JSON.parse(pack.stdout)[0].files.map((f: { path: string }) => f.path);
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'native/build.mjs', 'native/addon.c',
      'native/common.h', 'README.md', 'LICENSE', 'package.json', 'src/web/index.html', 'src/web/rank.js']) {
      assert.ok(files.includes(f), `the tarball holds ${f}`);
    }
    const stray = files.filter((f) => /^(test|bench|scripts)\/|^dist\/(test|bench)\/|^native\/build\/|node_modules/.test(f));
    assert.deepEqual(stray, [], 'no tests, benches, build outputs or modules in the tarball');
    const tgz = join(dir, `chatwright-${VERSION}.tgz`);
    assert.ok(existsSync(tgz));

    // ---- install into an empty project, offline. Offline npm cannot resolve versions (it has the tarballs in its
    // cache, not the registry's version lists), so the project starts with a lockfile that pins chatwright's
    // dependencies as our own lockfile does; `npm install` then takes everything from the cache.
    const app = join(dir, 'app');
    mkdirSync(app);
    const tgzName = `chatwright-${VERSION}.tgz`;
    copyFileSync(tgz, join(app, tgzName));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const rootLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    const packages: Record<string, unknown> = {
      '': { name: 'app', dependencies: { chatwright: `file:${tgzName}` } },
      'node_modules/chatwright': {
        version: VERSION, resolved: `file:${tgzName}`, hasInstallScript: true, license: pkg.license,
        integrity: 'sha512-' + createHash('sha512').update(readFileSync(tgz)).digest('base64'),
        dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines,
      },
    };
    for (const [k, v] of Object.entries<{ dev?: boolean }>(rootLock.packages)) if (k && !v.dev) packages[k] = v;
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { chatwright: `file:${tgzName}` } }));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }));
    const inst = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', `./${tgzName}`], { cwd: app });
    assert.equal(inst.status, 0, `npm install failed:\n${inst.out}`);
    const pkgDir = join(app, 'node_modules', 'chatwright');
    assert.ok(existsSync(join(pkgDir, 'native', 'build', 'chatwright.node')), `the install script built the addon:\n${inst.out}`);

    const npx = (args: string[]) => sh('npx', ['--offline', 'chatwright', ...args], { cwd: app });
    const version = npx(['--version']);
    assert.equal(version.status, 0, version.out);
    assert.match(version.stdout, /^chatwright \d+\.\d+\.\d+/m);
    const help = npx(['--help']);
    assert.equal(help.status, 0, help.out);
    assert.match(help.stdout, /usage: chatwright <command>/);
    assert.match(help.stdout, /export\s+export a model to GGUF/);

    // ---- a tiny pretrain + generate through the installed CLI
    writeFileSync(join(app, 'corpus.jsonl'), Array.from({ length: 300 }, (_, i) => JSON.stringify({ text: `the cat sat on mat number ${i % 7}. the dog ran.` })).join('\n'));
    const steps: string[][] = [
      ['tokenizer', 'train', '--corpus', 'corpus.jsonl', '--vocab-size', '300', '--out', 'tok'],
      ['data', 'prepare', '--corpus', 'corpus.jsonl', '--tokenizer', 'tok', '--out', 'data'],
      ['pretrain', '--preset', 'tiny', '--data', 'data', '--out', 'base', '--steps', '20', '--batch-size', '4', '--seq-len', '32',
        '--n-layer', '1', '--n-embd', '64', '--context', '64'],
      ['generate', '--model', 'base', '--prompt', 'the cat', '--max-tokens', '8', '--temperature', '0', '--json'],
    ];
    let last = { status: 0 as number | null, stdout: '', out: '' };
    for (const s of steps) {
      last = npx(s);
      assert.equal(last.status, 0, `chatwright ${s.join(' ')}:\n${last.out.slice(-3000)}`);
    }
    const g = JSON.parse(last.stdout);
    assert.ok(g.completion_tokens > 0 && typeof g.text === 'string', last.stdout);

    // ---- the installed server finds its page (src/web/ ships in the tarball)
    const srv = spawn(process.execPath, [join(pkgDir, 'dist', 'src', 'cli', 'main.js'), 'serve', '--model', 'base', '--port', '0', '--no-log'],
      { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '', err = '';
      srv.stderr.on('data', (d) => (err += d));
      const url = await new Promise<string>((resolve, reject) => {
        srv.stdout.on('data', (d) => {
          out += d;
          const m = /^(http:\/\/\S+)$/m.exec(out);
          if (m) resolve(m[1]);
        });
        srv.once('exit', (code) => reject(new Error(`the installed serve exited ${code}: ${err}`)));
      });
      for (const path of ['/', '/rank.js']) assert.equal((await fetch(`${url}${path}`)).status, 200, path);
    } finally {
      srv.kill('SIGTERM');
      if (srv.exitCode === null) await once(srv, 'exit');
    }

    // ---- the library: `import from 'chatwright'`, run, and type-checked against the shipped declarations
    const lib = `import { Tokenizer, loadModel, generate, trainTokenizer, exportGguf, sft, pretrain, describeModel } from 'chatwright';
const { model, tokenizer } = loadModel('base');
const ids: number[] = [tokenizer!.bos, ...tokenizer!.encode('the dog')];
const r = generate(model, tokenizer!, ids, { maxNewTokens: 4, temperature: 0 });
const t: Tokenizer = trainTokenizer(['aaabdaaabac'], { vocabSize: 259 + 7 });
exportGguf(model, tokenizer!, 'base.gguf', 'f16');
console.log(JSON.stringify({ n: r.ids.length, v: t.vocabSize, info: describeModel('base.gguf').format, fns: typeof sft + typeof pretrain }));
`;
    writeFileSync(join(app, 'lib.ts'), lib);
    writeFileSync(join(app, 'lib.mjs'), lib.replace(': number[]', '').replace(': Tokenizer', '').replaceAll('!', ''));
    const run = sh(process.execPath, ['lib.mjs'], { cwd: app });
    assert.equal(run.status, 0, run.out);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').pop()!), { n: 4, v: 266, info: 'gguf', fns: 'functionfunction' });
    const tsc = sh(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--skipLibCheck',
      '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'lib.ts'], { cwd: app });
    assert.equal(tsc.status, 0, `the shipped declarations type-check a user's file:\n${tsc.out}`);
    const wrong = lib.replace("generate(model, tokenizer!, ids, { maxNewTokens: 4, temperature: 0 })", "generate(model, tokenizer!, ids, { maxNewTokens: '4' })");
    writeFileSync(join(app, 'lib.ts'), wrong);
    const tscBad = sh(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--skipLibCheck',
      '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'lib.ts'], { cwd: app });
    assert.notEqual(tscBad.status, 0, 'a wrong argument type is a type error');
    assert.match(tscBad.out, /lib\.ts\(4,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);

    // ---- no compiler: one line, exit 0, and the CLI still runs (JS backend), as a user's install (not CI's strict one)
    const userEnv = { ...process.env, CC: 'no-such-compiler-cw', CI: '', CHATWRIGHT_REQUIRE_NATIVE: '' };
    const noCc = sh(process.execPath, ['native/build.mjs'], { cwd: pkgDir, env: userEnv });
    assert.equal(noCc.status, 0, noCc.out);
    assert.equal(noCc.out.trim().split('\n').length, 1, noCc.out);
    assert.match(noCc.out, /native kernels unavailable: .*JS backend/);
    const js = npx(['generate', '--model', 'base', '--prompt', 'the cat', '--max-tokens', '3', '--temperature', '0', '--json']);
    assert.equal(js.status, 0, js.out);
    assert.equal(JSON.parse(js.stdout).completion_tokens, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
