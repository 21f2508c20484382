// Serving speed: C concurrent streaming clients (C = 1, 8, 32) against an OpenAI-compatible server on 127.0.0.1, each
// sending its requests one after another. Per level: requests/s, aggregate tokens/s, time to first token (median and
// p90) and decode tokens/s per client (median), measured by the clients over HTTP, so the server's queueing, batching
// and SSE are all in the figures. The server runs as a child process, as a user runs it (`chatwright serve`), so the
// clients never share its event loop.
//
//   npx tsc -p . && node dist/bench/serve.js                               # a random-weight `small` model, made here
//   node dist/bench/serve.js --model runs/poems/sft --clients 1,8,32 --requests 4 --max-tokens 64 [--json]
//
// Every answer runs to --max-tokens (the end-of-turn tokens are banned through logit_bias, which llama.cpp's server and
// vLLM take too), so all servers do the same work. Peers: each entry of PEERS is started on the same model folder and
// measured by the same clients, in the same run. The llama.cpp peer is the model exported to GGUF f32 (our weights are
// f32 too) and decoded by node-llama-cpp (a devDependency, llama.cpp's prebuilt CPU binary) behind the small streaming
// server of bench/serve_llama.ts, with as many sequences as our slots and the same thread count; without
// node-llama-cpp it says so and is skipped.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { loadModel, saveModel } from '../src/model/checkpoint.js';
import { exportGguf } from '../src/model/gguf-model.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { poemText, readPoems } from '../src/train/corpora.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const LEVELS = arg('clients', '1,8,32').split(',').map(Number);
const REQUESTS = Number(arg('requests', '3')); // per client, per level
const MAX_TOKENS = Number(arg('max-tokens', '64'));
const PRESET = arg('preset', 'small');
const JSON_OUT = argv.includes('--json');
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const LLAMA_SERVER = join(dirname(fileURLToPath(import.meta.url)), 'serve_llama.js');
const OURS = 'chatwright serve', PEER = 'llama.cpp (node-llama-cpp, GGUF f32)';

// ---- the servers measured

interface Running { url: string; model: string; stop(): Promise<void> }
interface Peer { name: string; start(modelDir: string, slots: number): Promise<Running | string> } // a string: why it was skipped

const PEERS: Peer[] = [
  { name: OURS, start: startChatwright },
  { name: PEER, start: startLlama },
];

async function startChatwright(modelDir: string, slots: number): Promise<Running> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--model', `bench=${modelDir}`, '--port', '0', '--max-batch', String(slots),
    '--max-queue', String(4 * slots), '--no-log'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await urlFrom(child);
  return { url, model: 'bench', stop: () => stopChild(child) };
}

async function startLlama(modelDir: string, slots: number): Promise<Running | string> {
  try {
    const pkg = 'node-llama-cpp';
    await import(pkg);
  } catch {
    return 'the npm package node-llama-cpp (3.21.1, a devDependency) is not installed';
  }
  const { model, tokenizer } = loadModel(modelDir);
  const dir = mkdtempSync(join(tmpdir(), 'chatwright-bench-serve-gguf-'));
  const gguf = join(dir, 'model-f32.gguf');
  exportGguf(model, tokenizer!, gguf, 'f32');
  const threads = Number(process.env.CHATWRIGHT_THREADS) || availableParallelism(); // what our native pool takes
  const child = spawn(process.execPath, [LLAMA_SERVER, '--gguf', gguf, '--model', modelDir, '--slots', String(slots), '--threads', String(threads)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await urlFrom(child);
    return { url, model: 'bench', stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    } };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return `node-llama-cpp did not start: ${(e as Error).message.split('\n').slice(0, 2).join(' ')}`;
  }
}

function urlFrom(child: ChildProcess): Promise<string> {
  let out = '', err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/\S+)$/m.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

// ---- the clients

interface Sample { ttft: number; tokens: number; decodeTps: number; total: number }

async function request(s: Running, i: number, ban: Record<string, number>): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: s.model, messages: [{ role: 'user', content: `写一首诗，题目是第${i}首` }], max_tokens: MAX_TOKENS, temperature: 0.8,
      seed: i, logit_bias: ban, stream: true, stream_options: { include_usage: true },
    }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '', tFirst = 0, tLast = 0, tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
      const data = buf.slice(buf.indexOf('data:') + 5, cut).trim();
      buf = buf.slice(cut + 2);
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data);
      if (chunk.choices?.[0]?.delta?.content !== undefined && chunk.choices[0].delta.content !== '') {
        tLast = performance.now();
        if (!tFirst) tFirst = tLast;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  const decode = (tLast - tFirst) / 1000;
  return { ttft: (tFirst - t0) / 1000, tokens, decodeTps: tokens > 1 && decode > 0 ? (tokens - 1) / decode : 0, total: (performance.now() - t0) / 1000 };
}

async function level(s: Running, clients: number, ban: Record<string, number>) {
  await request(s, 0, ban); // warm-up
  const t0 = performance.now();
  const samples = (await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const out: Sample[] = [];
    for (let r = 0; r < REQUESTS; r++) out.push(await request(s, 1 + c * REQUESTS + r, ban));
    return out;
  }))).flat();
  const wall = (performance.now() - t0) / 1000;
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const tokens = samples.reduce((a, x) => a + x.tokens, 0);
  return {
    clients, requests: samples.length, wall, requestsPerSec: samples.length / wall, tokensPerSec: tokens / wall,
    ttftMedian: q(samples.map((x) => x.ttft), 0.5), ttftP90: q(samples.map((x) => x.ttft), 0.9),
    clientTpsMedian: q(samples.map((x) => x.decodeTps), 0.5), tokensPerRequest: tokens / samples.length,
  };
}

// ---- the model: the one given, or a random-weight preset with a small trained tokenizer

function benchModel(): { dir: string; cleanup(): void } {
  const given = arg('model', '');
  if (given) return { dir: given, cleanup: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'chatwright-bench-serve-'));
  const tokenizer = trainTokenizer(readPoems({ simplified: true, limit: 3000 }).map(poemText), { vocabSize: 4096 });
  saveModel(dir, GPT.create(configFromPreset(PRESET, tokenizer.vocabSize), 1), tokenizer);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function main() {
  const m = benchModel();
  const { model, tokenizer } = loadModel(m.dir);
  const ban = Object.fromEntries([tokenizer!.eot, tokenizer!.eos, tokenizer!.bos, tokenizer!.user, tokenizer!.assistant, tokenizer!.system]
    .filter((id) => id >= 0).map((id) => [String(id), -100]));
  const slots = Math.max(...LEVELS);
  if (!JSON_OUT) console.log(`model ${arg('model', '') || `random ${PRESET}`} (${model.config.nLayer} layers, ${model.config.nEmbd} wide, vocab ${model.config.vocabSize}), ` +
    `${MAX_TOKENS} tokens per answer, ${REQUESTS} requests per client, levels ${LEVELS.join(', ')}`);
  const results: Record<string, unknown> = {};
  try {
    for (const peer of PEERS) {
      const s = await peer.start(m.dir, slots);
      if (typeof s === 'string') {
        if (!JSON_OUT) console.log(`\n${peer.name}: skipped (${s})`);
        results[peer.name] = { skipped: s };
        continue;
      }
      try {
        const rows = [];
        for (const c of LEVELS) rows.push(await level(s, c, ban));
        results[peer.name] = rows;
        if (!JSON_OUT) {
          console.log(`\n${peer.name}`);
          console.log('clients  requests  req/s  tokens/s (all)  TTFT median / p90 (s)  tokens/s per client (median)');
          for (const r of rows)
            console.log(`${String(r.clients).padStart(7)}  ${String(r.requests).padStart(8)}  ${r.requestsPerSec.toFixed(2).padStart(5)}  ` +
              `${r.tokensPerSec.toFixed(1).padStart(14)}  ${`${r.ttftMedian.toFixed(3)} / ${r.ttftP90.toFixed(3)}`.padStart(21)}  ${r.clientTpsMedian.toFixed(1).padStart(10)}`);
        }
      } finally {
        await s.stop();
      }
    }
  } finally {
    m.cleanup();
  }
  const ours = results[OURS], peer = results[PEER];
  if (Array.isArray(ours) && Array.isArray(peer) && !JSON_OUT) {
    console.log('\nratio ours / llama.cpp (aggregate tokens/s): ' +
      ours.map((r, i) => `${r.clients} clients ${(r.tokensPerSec / peer[i].tokensPerSec).toFixed(2)}x`).join(', '));
  }
  if (JSON_OUT) console.log(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
