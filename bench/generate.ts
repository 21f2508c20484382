// Generation speed: prefill tokens/s for a 256-token prompt, and decode tokens/s at batch 1 and batch 8, for the small
// and medium presets with random weights, on all threads. Batch-1 decoding reads every weight once per token, so it is
// bound by memory bandwidth: the script prints the weight-read bandwidth it achieved beside the machine's bandwidth
// measured in the same run (a large multi-threaded copy, counted as STREAM does: bytes read + bytes written), and the
// ratio (target for medium: >= 70%). For scale: PyTorch on the project's 2-core machine decodes small at ~300 tokens/s
// and medium at ~36.
//
//   npx tsc -p . && node dist/bench/generate.js                       # small and medium, vocab 8192
//   node dist/bench/generate.js --presets small --decode 32 --vocab 4096
//
// Decode figures run the whole engine (forward + sampler chain at temperature 0 + bookkeeping); "forward only" times
// GPT.forwardCached alone, so the gap is the engine's overhead.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset, describeConfig } from '../src/model/config.js';
import { getBackend } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';
import { Engine } from '../src/generate/index.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const presets = arg('presets', 'small,medium').split(',');
const V = Number(arg('vocab', '8192'));
const PROMPT = Number(arg('prompt', '256'));
const DECODE = Number(arg('decode', '48'));
const REPS = Number(arg('reps', '3'));

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

// Bytes of weights one decode step reads: every matrix and norm; the token embedding is read as the lm head when tied
// (a row gather otherwise, negligible) and the untied lm head in full.
function weightBytes(model: GPT): number {
  let n = 0;
  for (const [name, p] of model.params) {
    if (name.endsWith('wpe.weight')) continue; // a row gather
    if (name.endsWith('embed_tokens.weight') || name.endsWith('wte.weight')) {
      if (model.config.tiedEmbeddings) n += p.size; // read in full as the lm head
      continue;
    }
    n += p.size;
  }
  return 4 * n;
}

async function main() {
  const be = getBackend();
  const native = be.name === 'native';
  const threads = native ? nativeControls.numThreads() : Number(process.env.CHATWRIGHT_THREADS) || availableParallelism();
  console.log(`backend ${be.name}${native ? ` (${nativeControls.cpuLevelName()})` : ''}, ${threads} threads (CHATWRIGHT_THREADS), vocab ${V}, prompt ${PROMPT}, ${DECODE} decode steps, best/median of ${REPS}`);
  // The copy is measured before and after every preset and the best figure kept: on a shared machine a copy slowed by
  // another process would otherwise flatter the ratio.
  const copies: number[] = [];
  const measureCopy = async () => {
    const bw = await copyBandwidth(256 * 2 ** 20, threads, 5);
    copies.push(bw);
    console.log(`  memory bandwidth (copy of 256 MiB on ${threads} threads, read + write): ${(bw / 1e9).toFixed(2)} GB/s`);
  };
  await measureCopy();
  const rows: Record<string, unknown>[] = [];
  for (const preset of presets) {
    const model = GPT.create(configFromPreset(preset, V), 1);
    const wb = weightBytes(model);
    console.log(`\n${preset}: ${describeConfig(model.config)}; ${(model.numParams() / 1e6).toFixed(1)}M parameters, ` +
      `${(wb / 2 ** 20).toFixed(0)} MiB of weights read per decode step`);

    // prefill: one forward over the prompt into a fresh cache
    const cache = model.newKVCache(1, Math.min(model.config.maxSeqLen, PROMPT + DECODE));
    const p = Int32Array.from(ids(PROMPT, 1));
    const pre: number[] = [];
    for (let r = 0; r <= REPS; r++) {
      cache.reset();
      const t0 = performance.now();
      model.forwardCached(p, 1, PROMPT, cache, { lastOnly: true });
      if (r > 0) pre.push((performance.now() - t0) / 1000); // the first is a warm-up
    }
    const prefillTps = PROMPT / Math.min(...pre);
    console.log(`  prefill  ${PROMPT} tokens: ${prefillTps.toFixed(0)} tokens/s (${(Math.min(...pre) * 1000).toFixed(0)} ms)`);

    // decode, forward only: batch 1, one token per step after a 16-token prompt
    const fcache = model.newKVCache(1, 16 + DECODE + 1);
    const fwd: number[] = [];
    for (let r = 0; r < REPS; r++) {
      fcache.reset();
      model.forwardCached(Int32Array.from(ids(16, 2)), 1, 16, fcache, { lastOnly: true });
      const one = new Int32Array(1);
      const t0 = performance.now();
      for (let s = 0; s < DECODE; s++) {
        one[0] = (s * 31) % V;
        model.forwardCached(one, 1, 1, fcache, { lastOnly: true });
      }
      fwd.push(DECODE / ((performance.now() - t0) / 1000));
    }

    // decode through the engine: batch 1 and batch 8, greedy, prompts of different lengths for the batch
    const decode = (B: number) => {
      const tps: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const prompts = Array.from({ length: B }, (_, b) => ids(16 + 3 * b, b + 3));
        const run = new Engine(model).start(prompts, { maxNewTokens: DECODE + 1, temperature: 0, stopTokens: [] });
        run.step(); // the first token comes from the prefill logits: not a decode step
        const t0 = performance.now();
        let n = 0;
        while (!run.done) n += run.step().filter((s) => s !== null).length;
        tps.push(n / ((performance.now() - t0) / 1000));
      }
      return tps;
    };
    const d1 = decode(1), d8 = decode(8);
    const fwdBest = Math.max(...fwd), d1Best = Math.max(...d1), d8Best = Math.max(...d8);
    const readBw = wb * d1Best;
    console.log(`  decode batch 1: ${d1Best.toFixed(1)} tokens/s (median ${median(d1).toFixed(1)}); forward only ${fwdBest.toFixed(1)} tokens/s`);
    console.log(`  decode batch 8: ${d8Best.toFixed(1)} tokens/s (median ${median(d8).toFixed(1)}), ${(d8Best / d1Best).toFixed(2)}x batch 1`);
    console.log(`  weight reads at batch 1: ${(readBw / 1e9).toFixed(2)} GB/s`);
    rows.push({ preset, params: model.numParams(), weightBytes: wb, prefillTps: +prefillTps.toFixed(1), decode1Tps: +d1Best.toFixed(1),
      forward1Tps: +fwdBest.toFixed(1), decode8Tps: +d8Best.toFixed(1), readGBs: +(readBw / 1e9).toFixed(2) });
    await measureCopy();
  }
  const bw = Math.max(...copies);
  console.log(`\nmemory bandwidth, best of ${copies.length} copies: ${(bw / 1e9).toFixed(2)} GB/s`);
  for (const r of rows) {
    const ratio = (r.readGBs as number) * 1e9 / bw;
    r.copyGBs = +(bw / 1e9).toFixed(2);
    r.ratio = +ratio.toFixed(3);
    console.log(`${r.preset}: batch-1 weight reads ${r.readGBs} GB/s = ${(100 * ratio).toFixed(0)}% of it` +
      (r.preset === 'medium' ? ` (target >= 70%: ${ratio >= 0.7 ? 'met' : 'NOT met'})` : ''));
  }
  console.log(JSON.stringify({ backend: be.name, threads, vocab: V, results: rows }));
}

await main();
