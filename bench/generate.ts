// Generation speed with float32, bf16 and q8_0 weights, beside its peers in the same run: prefill tokens/s for one
// prompt, and greedy decode tokens/s at batch 1 and batch 8 through the engine, for the small and medium presets with
// random weights, on all threads.
//
//   npx tsc -p . && node dist/bench/generate.js                       # small and medium, f32 bf16 q8_0, vocab 8192
//   node dist/bench/generate.js --presets medium --dtypes f32,q8_0 --rounds 5
//   node dist/bench/generate.js --no-torch --no-llama                 # ours only
//   node dist/bench/generate.js --model runs/demo/base                # a trained model instead of random presets
//
// Batch-1 decoding reads every weight once per token, so it is bound by memory bandwidth: the script prints the bytes
// of weights each dtype reads per token and the bandwidth that achieved, beside the machine's bandwidth measured in the
// same run (a large multi-threaded copy, counted as STREAM does: bytes read + bytes written).
// Pairing (a shared machine drifts by 20% and more within seconds): each round measures every dtype back to back,
// and each peer right after ours; figures are medians over rounds, ratios the medians of the per-round ratios.
// Peers (never dependencies; each prints why when it cannot run):
// - PyTorch fp32 (bench/generate_torch.py, a python3 with torch: Debian's python3-torch) on the same model (our weights
//   written to a file), the same prompts and the same sampler (greedy), same thread count; its greedy tokens are
//   compared with ours.
// - llama.cpp through node-llama-cpp on the same model exported to GGUF f32 and q8_0 (bench/generate_llama.ts).
// Decode figures run the whole engine (forward + sampler chain at temperature 0 + bookkeeping). With random weights
// greedy decoding repeats one token, so the token comparisons with the peers only mean something with --model (a
// trained model: its tokens then part only where the logits nearly tie).
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset, describeConfig } from '../src/model/config.js';
import { loadModel } from '../src/model/checkpoint.js';
import { getBackend } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';
import { WEIGHT_DTYPES, type WeightDtype } from '../src/tensor/quant.js';
import { Engine } from '../src/generate/index.js';
import { NO_TORCH, torchEnv, torchPython } from './peers.js';
import { llamaPeer, type PeerFigures } from './generate_llama.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const modelDir = arg('model', '');
const presets = modelDir ? [modelDir] : arg('presets', 'small,medium').split(',');
const dtypes = arg('dtypes', WEIGHT_DTYPES.join(',')).split(',') as WeightDtype[];
for (const d of dtypes) if (!WEIGHT_DTYPES.includes(d)) throw new Error(`--dtypes: ${d} is not one of ${WEIGHT_DTYPES.join(', ')}`);
let V = Number(arg('vocab', '8192'));
const PROMPT = Number(arg('prompt', '256'));
const DECODE = Number(arg('decode', '48'));
const ROUNDS = Number(arg('rounds', '3'));
const BATCH = 8;

// ---- memory bandwidth: every thread copies its slice of a large buffer (twice the last-level cache many times over)
async function copyBandwidth(bytes: number, threads: number, reps: number): Promise<number> {
  const n = bytes / 4;
  const src = new Float32Array(new SharedArrayBuffer(bytes)), dst = new Float32Array(new SharedArrayBuffer(bytes));
  for (let i = 0; i < n; i += 1024) src[i] = i; // touch every page
  dst.fill(0);
  const code = `
    const { parentPort, workerData: { src, dst, a, b } } = require('node:worker_threads');
    const s = new Float32Array(src), d = new Float32Array(dst);
    parentPort.on('message', () => { d.set(s.subarray(a, b), a); parentPort.postMessage(0); });`;
  const workers = Array.from({ length: threads }, (_, t) => new Worker(code, {
    eval: true, workerData: { src: src.buffer, dst: dst.buffer, a: Math.floor((n * t) / threads), b: Math.floor((n * (t + 1)) / threads) },
  }));
  const once = () => Promise.all(workers.map((w) => new Promise((r) => { w.once('message', r); w.postMessage(0); })));
  await once(); // warm up: page in, JIT
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await once();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return (2 * bytes) / best; // bytes/s, read + write
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % V);

interface Figures { prefill: number[]; decode1: number[]; decode8: number[]; greedy: number[] }

// One round of one dtype: prefill of the long prompt into a fresh cache (after a warm-up call), then greedy decoding
// through the engine at batch 1 (the first of the batch prompts) and batch 8 (8 prompts of 16 tokens).
function measure(model: GPT, f: Figures): void {
  const p = Int32Array.from(ids(PROMPT, 1));
  const cache = model.newKVCache(1, Math.min(model.config.maxSeqLen, PROMPT));
  model.forwardCached(p, 1, PROMPT, cache, { lastOnly: true });
  cache.reset();
  const t0 = performance.now();
  model.forwardCached(p, 1, PROMPT, cache, { lastOnly: true });
  f.prefill.push(PROMPT / ((performance.now() - t0) / 1000));
  const prompts = Array.from({ length: BATCH }, (_, b) => ids(16, b + 3));
  const decode = (B: number) => {
    const run = new Engine(model).start(prompts.slice(0, B), { maxNewTokens: DECODE + 1, temperature: 0, stopTokens: [] });
    run.step(); // the first token comes from the prefill logits: not a decode step
    const t1 = performance.now();
    let n = 0;
    while (!run.done) n += run.step().filter((s) => s !== null).length;
    const tps = n / ((performance.now() - t1) / 1000);
    return { tps, ids: run.rows[0].ids };
  };
  const d1 = decode(1);
  f.decode1.push(d1.tps);
  f.greedy = d1.ids;
  f.decode8.push(decode(BATCH).tps);
}

// ---- the PyTorch peer: our weights and layout to files, bench/generate_torch.py on them
function torchPeer(model: GPT, threads: number): (PeerFigures & { greedy: number[]; version: string }) | string {
  if (argv.includes('--no-torch')) return 'PyTorch not run: --no-torch';
  if (model.config.arch !== 'llama') return 'PyTorch peer: llama style only';
  const python = torchPython();
  if (!python) return NO_TORCH;
  const dir = mkdtempSync(join(tmpdir(), 'cw-bench-gen-'));
  try {
    writeFileSync(join(dir, 'weights.f32'), model.flat);
    const spec = {
      config: model.config, weights: join(dir, 'weights.f32'),
      layout: model.layout.map((p) => ({ name: p.name, shape: p.shape, offset: p.offset })),
      prompt: ids(PROMPT, 1), decode: DECODE, prompts8: Array.from({ length: BATCH }, (_, b) => ids(16, b + 3)),
      reps: ROUNDS, threads,
    };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    const script = fileURLToPath(new URL('../../bench/generate_torch.py', import.meta.url));
    const r = spawnSync(python, [script, join(dir, 'spec.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: torchEnv() });
    const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) return `PyTorch run failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`;
    const j = JSON.parse(line) as { prefill_s: number[]; decode1_tps: number[]; decode8_tps: number[]; ids1: number[]; torch: string };
    return {
      prefill: PROMPT / Math.min(...j.prefill_s), decode1: median(j.decode1_tps), decode8: median(j.decode8_tps),
      greedy: j.ids1, version: j.torch,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function cpuModel(): string {
  return cpus()[0]?.model?.trim() || 'unknown CPU';
}

async function main() {
  const be = getBackend();
  const native = be.name === 'native';
  const threads = native ? nativeControls.numThreads() : Number(process.env.CHATWRIGHT_THREADS) || availableParallelism();
  console.log(`${cpuModel()}; backend ${be.name}${native ? `, dispatch ${nativeControls.cpuLevelName()}` : ''}, ${threads} threads ` +
    `(CHATWRIGHT_THREADS); vocab ${V}, prompt ${PROMPT}, ${DECODE} decode steps, batch 1 and ${BATCH}; medians of ${ROUNDS} rounds`);
  // The copy is measured before and after every preset and the best figure kept: on a shared machine a copy slowed by
  // another process would otherwise flatter the ratio.
  const copies: number[] = [];
  const measureCopy = async () => copies.push(await copyBandwidth(256 * 2 ** 20, threads, 5));
  await measureCopy();
  const results: Record<string, unknown>[] = [];
  for (const preset of presets) {
    const model = modelDir ? loadModel(modelDir).model : GPT.create(configFromPreset(preset, V), 1);
    V = model.config.vocabSize; // the prompts' ids are below it
    console.log(`\n${preset}: ${describeConfig(model.config)}; ${(model.numParams() / 1e6).toFixed(1)}M parameters`);
    const bytes: Record<string, number> = {};
    const figs: Record<string, Figures> = {};
    for (const d of dtypes) {
      bytes[d] = model.setInferenceDtype(d).bytes;
      figs[d] = { prefill: [], decode1: [], decode8: [], greedy: [] };
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const d of dtypes) {
        model.setInferenceDtype(d);
        measure(model, figs[d]);
      }
    }
    model.setInferenceDtype('f32');
    const torch = torchPeer(model, threads);
    const llama = argv.includes('--no-llama') ? 'llama.cpp not run: --no-llama'
      : await llamaPeer(model, { prompt: ids(PROMPT, 1), prompts: Array.from({ length: BATCH }, (_, b) => ids(16, b + 3)), decode: DECODE, rounds: ROUNDS, threads });
    await measureCopy();
    const bw = Math.max(...copies);

    const row = (name: string, f: PeerFigures, read?: number) =>
      console.log(`  ${name.padEnd(22)} ${f.prefill.toFixed(0).padStart(8)} ${f.decode1.toFixed(1).padStart(9)} ${f.decode8.toFixed(1).padStart(9)}` +
        (read ? `   ${(read / 2 ** 20).toFixed(0).padStart(5)} MiB  ${((read * f.decode1) / 1e9).toFixed(1).padStart(5)} GB/s = ${((100 * read * f.decode1) / bw).toFixed(0)}% of copy` : ''));
    console.log(`  ${''.padEnd(22)} ${'prefill'.padStart(8)} ${'decode 1'.padStart(9)} ${`decode ${BATCH}`.padStart(9)}   (tokens/s; weights read per token, bandwidth at batch 1)`);
    const ours: Record<string, PeerFigures> = {};
    for (const d of dtypes) {
      ours[d] = { prefill: median(figs[d].prefill), decode1: median(figs[d].decode1), decode8: median(figs[d].decode8) };
      row(`chatwright ${d}`, ours[d], bytes[d]);
    }
    if (typeof torch === 'string') console.log(`  ${torch}`);
    else row(`PyTorch ${torch.version} fp32`, torch);
    if (typeof llama === 'string') console.log(`  ${llama}`);
    else for (const [d, f] of Object.entries(llama.figures)) row(`llama.cpp ${d}`, f);

    // ratios: dtypes against f32 as medians of per-round ratios; peers against each of ours
    const ratio = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]));
    const lines: string[] = [];
    if (figs.f32) {
      for (const d of dtypes.filter((x) => x !== 'f32')) {
        lines.push(`${d} / f32: prefill ${ratio(figs[d].prefill, figs.f32.prefill).toFixed(2)}x, decode 1 ` +
          `${ratio(figs[d].decode1, figs.f32.decode1).toFixed(2)}x, decode ${BATCH} ${ratio(figs[d].decode8, figs.f32.decode8).toFixed(2)}x`);
      }
    }
    if (typeof torch !== 'string') {
      for (const d of dtypes) {
        lines.push(`chatwright ${d} / PyTorch fp32: prefill ${(ours[d].prefill / torch.prefill).toFixed(2)}x, decode 1 ` +
          `${(ours[d].decode1 / torch.decode1).toFixed(2)}x, decode ${BATCH} ${(ours[d].decode8 / torch.decode8).toFixed(2)}x`);
      }
      if (figs.f32) {
        let same = 0;
        while (same < figs.f32.greedy.length && figs.f32.greedy[same] === torch.greedy[same]) same++;
        lines.push(`greedy tokens, ours f32 vs PyTorch: the first ${same} of ${figs.f32.greedy.length} agree ` +
          `(${modelDir ? 'near-ties may part them; a different model would at once' : 'random weights repeat one token: see --model'})`);
      }
    }
    if (typeof llama !== 'string') {
      for (const d of Object.keys(llama.greedy).filter((x) => figs[x])) {
        const a = figs[d].greedy, b = llama.greedy[d];
        let same = 0;
        while (same < a.length && a[same] === b[same]) same++;
        lines.push(`greedy tokens, ours ${d} vs llama.cpp ${d}: the first ${same} of ${a.length} agree`);
      }
      for (const d of Object.keys(llama.figures).filter((x) => ours[x])) {
        const l = llama.figures[d];
        lines.push(`chatwright ${d} / llama.cpp ${d}: prefill ${(ours[d].prefill / l.prefill).toFixed(2)}x, decode 1 ` +
          `${(ours[d].decode1 / l.decode1).toFixed(2)}x, decode ${BATCH} ${(ours[d].decode8 / l.decode8).toFixed(2)}x`);
      }
    }
    for (const l of lines) console.log(`  ${l}`);
    results.push({ preset, params: model.numParams(), bytesPerToken: bytes, ours, figures: figs, torch, llama, copyGBs: +(bw / 1e9).toFixed(2) });
  }
  console.log(`\nmemory bandwidth, best of ${copies.length} copies of 256 MiB on ${threads} threads (read + write): ` +
    `${(Math.max(...copies) / 1e9).toFixed(2)} GB/s`);
  console.log(JSON.stringify({ cpu: cpuModel(), backend: be.name, dispatch: native ? nativeControls.cpuLevelName() : 'js', threads, vocab: V, results }));
}

await main();
