// Builds the native kernels: every native/*.c -> native/build/obj/*.o -> native/build/chatwright.node.
//
// Boundary: this script only compiles. It uses the system C compiler (env CC, else cc, gcc, clang) and the Node-API
// headers of the npm package node-api-headers (never downloaded; node-gyp's header download fails offline). The
// baseline is plain x86-64 (or the host's baseline elsewhere); SIMD code sits in functions marked
// __attribute__((target(...))) and is chosen at run time (native/cpu.c), so one binary runs on every x86-64 CPU.
// On AArch64 (Linux, macOS) NEON is the baseline and the same sources build the NEON level instead (kernels_levels.h).
// On Linux the napi_* symbols stay undefined in the .node file and are resolved from the node binary at load; on
// macOS the linker is told so (-undefined dynamic_lookup).
//
// Incremental: an object is rebuilt when its .c or a local header it includes (transitively) is newer; the addon
// is relinked when an object is newer or the list of sources changed; a change of compiler flags rebuilds everything.
//
// Two modes. For users: if there is no compiler or a compile fails, it prints ONE warning and exits 0, and chatwright
// runs on the JS backend. Where the native backend is required (CI: the CI variable set, as CI services do, to anything
// but "", "0" or "false"; or CHATWRIGHT_REQUIRE_NATIVE=1): warnings are errors (-Werror) and any failure exits 1, so a
// broken kernel cannot land green (test/helpers.ts makes the native tests fail instead of skipping there too).
//
// Usage: node native/build.mjs [--force] [--verbose] [--out DIR]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// --out DIR: build elsewhere (a cross build, e.g. CC=aarch64-linux-gnu-gcc for scripts/test-arm64.mjs)
const outArg = process.argv.indexOf('--out');
const outDir = outArg >= 0 && process.argv[outArg + 1] ? resolve(process.argv[outArg + 1]) : join(here, 'build');
const objDir = join(outDir, 'obj');
const target = join(outDir, 'chatwright.node');
const stampPath = join(outDir, 'sources.json');
const force = process.argv.includes('--force');
const verbose = process.argv.includes('--verbose');
const ci = process.env.CI;
const required = process.env.CHATWRIGHT_REQUIRE_NATIVE === '1' || (ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false');

function giveUp(reason) {
  // A stale addon would no longer match the sources, so it goes too: the warning must be true.
  rmSync(target, { force: true });
  if (required || outArg >= 0) { // required here, or a build for elsewhere: failing is an error, not a fallback
    console.error(`error: native kernels failed to build: ${reason}\n` + (outArg >= 0 ? '(a build for another machine, --out)' :
      `(the native backend is required here: ${process.env.CHATWRIGHT_REQUIRE_NATIVE === '1' ? 'CHATWRIGHT_REQUIRE_NATIVE=1' : `CI=${ci}`})`));
    process.exit(1);
  }
  console.warn(`warning: native kernels unavailable: ${reason}; chatwright will run on the slower JS backend`);
  process.exit(0);
}

function findCompiler() {
  const candidates = process.env.CC ? [process.env.CC] : ['cc', 'gcc', 'clang'];
  for (const cc of candidates) {
    const r = spawnSync(cc, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return cc;
  }
  return null;
}

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ ok: false, out: String(e) }));
    child.on('close', (code) => resolve({ ok: code === 0, out }));
  });
}

// ---- inputs
const sources = readdirSync(here).filter((f) => f.endsWith('.c')).sort();
if (sources.length === 0) giveUp('no C sources in native/');

let includeDir;
try {
  includeDir = createRequire(import.meta.url)('node-api-headers').include_dir;
  if (!existsSync(join(includeDir, 'node_api.h'))) throw new Error(`node_api.h not found in ${includeDir}`);
} catch (e) {
  giveUp(`the Node-API headers (npm package node-api-headers) are missing (${e.message}); HINT: run \`npm ci\``);
}

const cc = findCompiler();
if (!cc) {
  giveUp(process.env.CC ? `CC=${process.env.CC} does not run; HINT: point CC at a C compiler, or unset it`
    : 'no C compiler found (tried cc, gcc, clang); HINT: install gcc or clang');
}

const cflags = ['-O3', '-fPIC', '-pthread', '-std=gnu11', '-fvisibility=hidden', '-Wall', '-Wno-unused-function',
  ...(required ? ['-Werror'] : []), '-I', includeDir];
const ldflags = ['-shared', '-pthread'];
if (platform() === 'darwin') ldflags.push('-undefined', 'dynamic_lookup');

// ---- compile what changed, two at a time (or as many as there are cores)
mkdirSync(objDir, { recursive: true });
// The stamp records what the objects were built with; other flags (e.g. -Werror in CI) rebuild every object.
let stamp = '';
try {
  stamp = readFileSync(stampPath, 'utf8');
} catch {}
const wantStamp = JSON.stringify({ sources, cc, cflags: cflags.filter((f) => f !== includeDir) });
const flagsOf = (s) => {
  try {
    const j = JSON.parse(s);
    return JSON.stringify([j.cc, j.cflags]);
  } catch {
    return '';
  }
};
const rebuildAll = force || flagsOf(stamp) !== flagsOf(wantStamp);
// The local headers a file includes, transitively (#include "x.h"), so a header edit rebuilds only its users.
const includeCache = new Map();
function localIncludes(file, seen = new Set()) {
  if (!includeCache.has(file)) {
    let text = '';
    try {
      text = readFileSync(join(here, file), 'utf8');
    } catch {}
    // `#define CW_IMPL "x.h"` names a body that kernels_levels.h includes once per SIMD level
    includeCache.set(file, [...text.matchAll(/^\s*#\s*(?:include|define\s+CW_IMPL)\s+"([^"]+)"/gm)].map((m) => m[1]));
  }
  for (const h of includeCache.get(file)) {
    if (!seen.has(h)) {
      seen.add(h);
      localIncludes(h, seen);
    }
  }
  return seen;
}
const jobs = [];
for (const src of sources) {
  const obj = join(objDir, src.replace(/\.c$/, '.o'));
  const t = mtime(obj);
  const newestInput = Math.max(mtime(join(here, src)), ...[...localIncludes(src)].map((h) => mtime(join(here, h))));
  if (rebuildAll || t < 0 || t < newestInput) jobs.push({ src, obj });
}

const failures = [];
async function worker() {
  for (let job = jobs.shift(); job; job = jobs.shift()) {
    const tmp = `${job.obj}.tmp-${process.pid}`;
    const args = [...cflags, '-c', join(here, job.src), '-o', tmp];
    if (verbose) console.log(`${cc} ${args.join(' ')}`);
    const r = await run(cc, args);
    if (r.ok) renameSync(tmp, job.obj);
    else {
      rmSync(tmp, { force: true });
      failures.push(`${job.src}:\n${r.out.trim()}`);
    }
    if (r.ok && r.out.trim() && verbose) console.log(r.out.trim());
  }
}
const started = Date.now();
const nCompiled = jobs.length;
await Promise.all(Array.from({ length: Math.max(1, Math.min(availableParallelism(), 4)) }, worker));
if (failures.length) {
  console.error(failures.join('\n\n'));
  giveUp(`compiling ${failures.map((f) => f.split(':')[0]).join(', ')} failed (compiler output above)`);
}

// ---- link when an object or the list of sources changed; build under a temporary name, then rename (atomic)
const objs = sources.map((s) => join(objDir, s.replace(/\.c$/, '.o')));
const targetTime = mtime(target);
const needLink = force || targetTime < 0 || stamp !== wantStamp || objs.some((o) => mtime(o) > targetTime);
if (needLink) {
  const tmp = `${target}.tmp-${process.pid}`;
  const args = [...ldflags, '-o', tmp, ...objs, '-lm'];
  if (verbose) console.log(`${cc} ${args.join(' ')}`);
  const r = await run(cc, args);
  if (!r.ok) {
    rmSync(tmp, { force: true });
    console.error(r.out.trim());
    giveUp(`linking ${target} failed (linker output above)`);
  }
  renameSync(tmp, target);
  writeFileSync(stampPath, wantStamp);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`native: built ${outArg >= 0 ? target : 'native/build/chatwright.node'} (${nCompiled} of ${sources.length} files compiled with ${cc}, ${secs} s)`);
} else if (verbose) {
  console.log('native: native/build/chatwright.node is up to date');
}
