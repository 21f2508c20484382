// The GPT beyond the golden fixture: KV-cache decoding equals the full forward (prefill, token-by-token, batches of
// different lengths, both styles), checkpoint round trips and mismatch errors, malformed safetensors files, F16/BF16
// loading, the scalar head, presets and initialisation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, releaseTape, getBackend, setBackend, nativeAvailable } from '../src/tensor/index.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { GPT } from '../src/model/gpt.js';
import { GPTConfig, PRESETS, configFromPreset, validateConfig } from '../src/model/config.js';
import { saveModel, loadModel } from '../src/model/checkpoint.js';
import {
  readSafetensors, writeSafetensors, encodeSafetensors, parseSafetensors, floatToHalf, halfToFloat,
} from '../src/model/safetensors.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const LLAMA: GPTConfig = {
  arch: 'llama', vocabSize: 53, nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 32, intermediateSize: 48, maxSeqLen: 24,
  ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true,
};
const GPT2: GPTConfig = { ...LLAMA, arch: 'gpt2', nKvHead: 4, intermediateSize: 128 };

// Weights large enough that every path moves the logits (the 0.02 init leaves them nearly uniform).
function randomModel(c: GPTConfig, seed: number): GPT {
  const m = new GPT(c), rng = new Rng(seed);
  for (const p of m.layout) {
    for (let i = p.offset; i < p.offset + p.size; i++) m.flat[i] = (p.kind === 'norm' ? 1 : 0) + 0.15 * rng.normal();
  }
  return m;
}

function randomIds(n: number, V: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(V));
}

function fullLogits(m: GPT, ids: Int32Array): Float32Array {
  return noGrad(() => Float32Array.from(m.forward(ids, 1, ids.length).logits.data)); // (T, V)
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} != ${b.length}`);
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  assert.ok(d <= tol * Math.max(1, s), `${what}: max diff ${d} (scale ${s})`);
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'chatwright-model-'));
}

// ---------------------------------------------------------------- KV cache
// Runs fn on each available backend (the cached path calls Backend primitives directly, the full forward goes through
// the autograd ops).
function onBackends(fn: () => void): () => void {
  return () => {
    const prev = getBackend().name;
    try {
      for (const b of ['js', 'native'] as const) {
        if (b === 'native' && !nativeAvailable()) continue;
        setBackend(b);
        fn();
      }
    } finally {
      setBackend(prev);
    }
  };
}

for (const c of [LLAMA, GPT2]) {
  test(`${c.arch}: prefill + token-by-token decode equals the full forward at every step`, onBackends(() => {
    const m = randomModel(c, 1), V = c.vocabSize;
    const ids = randomIds(13, V, 2);
    const full = fullLogits(m, ids);
    const cache = m.newKVCache(1, 16);
    const pre = m.forwardCached(ids.subarray(0, 5), 1, 5, cache);
    assertClose(pre, full.subarray(0, 5 * V), 'prefill logits');
    for (let t = 5; t < ids.length; t++) {
      const step = m.forwardCached(ids.subarray(t, t + 1), 1, 1, cache);
      assertClose(step, full.subarray(t * V, (t + 1) * V), `decode step at position ${t}`);
    }
    assert.equal(cache.lens[0], ids.length);
    // lastOnly gives the last row of a prefill
    const c2 = m.newKVCache(1, 16);
    const last = m.forwardCached(ids, 1, ids.length, c2, { lastOnly: true });
    assertClose(last, full.subarray((ids.length - 1) * V), 'lastOnly prefill');
    assert.throws(() => m.forwardCached(ids.subarray(0, 4), 1, 4, cache), UserError, 'cache overflow is a UserError');
  }));

  test(`${c.arch}: batched decoding of sequences of different lengths equals each full forward`, onBackends(() => {
    const m = randomModel(c, 3), V = c.vocabSize;
    const seqs = [randomIds(12, V, 4), randomIds(9, V, 5), randomIds(7, V, 6)];
    const fulls = seqs.map((s) => fullLogits(m, s));
    const cache = m.newKVCache(3, 16);
    const pre = [4, 2, 3]; // different prompt lengths: prefill each row alone
    for (let r = 0; r < 3; r++) {
      const out = m.forwardCached(seqs[r].subarray(0, pre[r]), 1, pre[r], cache, { rows: [r] });
      assertClose(out, fulls[r].subarray(0, pre[r] * V), `prefill row ${r}`);
    }
    // a chunk of 2 tokens for every row at once (Tq > 1 with different cached lengths)
    const chunk = new Int32Array(6);
    for (let r = 0; r < 3; r++) chunk.set(seqs[r].subarray(pre[r], pre[r] + 2), r * 2);
    const outChunk = m.forwardCached(chunk, 3, 2, cache);
    for (let r = 0; r < 3; r++) {
      assertClose(outChunk.subarray(r * 2 * V, (r + 1) * 2 * V), fulls[r].subarray(pre[r] * V, (pre[r] + 2) * V), `chunk row ${r}`);
    }
    // batched single-token decode until the shortest runs out, then the others in a permuted, non-contiguous order
    const pos = pre.map((p) => p + 2);
    while (pos.every((p, r) => p < seqs[r].length)) {
      const step = Int32Array.from(pos.map((p, r) => seqs[r][p]));
      const out = m.forwardCached(step, 3, 1, cache, { lastOnly: true });
      for (let r = 0; r < 3; r++) {
        assertClose(out.subarray(r * V, (r + 1) * V), fulls[r].subarray(pos[r] * V, (pos[r] + 1) * V), `decode row ${r} at ${pos[r]}`);
        pos[r]++;
      }
    }
    const rows = [1, 0].filter((r) => pos[r] < seqs[r].length);
    while (rows.length > 0 && rows.every((r) => pos[r] < seqs[r].length)) {
      const out = m.forwardCached(Int32Array.from(rows.map((r) => seqs[r][pos[r]])), rows.length, 1, cache, { rows });
      rows.forEach((r, i) => {
        assertClose(out.subarray(i * V, (i + 1) * V), fulls[r].subarray(pos[r] * V, (pos[r] + 1) * V), `row ${r} at ${pos[r]}`);
        pos[r]++;
      });
    }
    assert.deepEqual([...cache.lens], pos);
  }));
}

test('decode steps reuse the cache scratch buffers (no new buffers after the first step)', () => {
  const m = randomModel(LLAMA, 7);
  const cache = m.newKVCache(2, 16);
  m.forwardCached(new Int32Array([1, 2, 3, 4, 5, 6]), 2, 3, cache);
  m.forwardCached(new Int32Array([7, 8]), 2, 1, cache);
  const before = new Map([...cache.scratch].map(([k, v]) => [k, v]));
  for (let i = 0; i < 3; i++) m.forwardCached(new Int32Array([9, 10]), 2, 1, cache);
  for (const [k, v] of cache.scratch) assert.equal(before.get(k), v, `scratch buffer ${k} was reallocated`);
});

// ---------------------------------------------------------------- checkpoints
for (const c of [LLAMA, GPT2, { ...LLAMA, tiedEmbeddings: false }, { ...GPT2, scalarHead: true }]) {
  const label = `${c.arch}${c.tiedEmbeddings ? ' tied' : ' untied'}${c.scalarHead ? ' scalar-head' : ''}`;
  test(`${label}: save/load round trip is exact`, () => {
    const dir = tmp();
    try {
      const m = randomModel(c, 11);
      saveModel(dir, m);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.equal(cfg.torch_dtype, 'float32');
      assert.equal(cfg.model_type, c.arch);
      const names = [...readSafetensors(join(dir, 'model.safetensors')).keys()];
      assert.equal(names.includes('lm_head.weight'), !c.tiedEmbeddings && !c.scalarHead, 'lm_head written only when untied');
      const { model, tokenizer } = loadModel(dir);
      assert.equal(tokenizer, null);
      assert.deepEqual(model.config, m.config);
      assert.deepEqual(model.flat, m.flat);
      const ids = randomIds(8, c.vocabSize, 12);
      assert.deepEqual(fullLogits(model, ids), fullLogits(m, ids));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('saveModel writes the tokenizer beside the weights and loadModel returns it', () => {
  const dir = tmp();
  try {
    const tok = trainTokenizer(['hello world, hello model', 'the quick brown fox'], { vocabSize: 280 });
    const m = randomModel({ ...LLAMA, vocabSize: tok.vocabSize }, 21);
    saveModel(dir, m, tok);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.bos_token_id, tok.bos);
    assert.equal(cfg.eos_token_id, tok.eos);
    const { model, tokenizer } = loadModel(dir);
    assert.ok(tokenizer);
    assert.equal(tokenizer.vocabSize, tok.vocabSize);
    assert.deepEqual(tokenizer.encode('hello fox'), tok.encode('hello fox'));
    assert.deepEqual(model.flat, m.flat);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gpt2 files store Conv1D weights (in, out) and accept Hub-style names without "transformer."', () => {
  const dir = tmp();
  try {
    const m = randomModel(GPT2, 13);
    saveModel(dir, m);
    const st = readSafetensors(join(dir, 'model.safetensors'));
    const C = GPT2.nEmbd;
    assert.deepEqual(st.get('transformer.h.0.attn.c_attn.weight')!.shape, [C, 3 * C]);
    assert.deepEqual(st.get('transformer.h.0.mlp.c_fc.weight')!.shape, [C, GPT2.intermediateSize]);
    // element (in=1, out=2) of the file is element (out=2, in=1) of nn.Linear layout
    const w = m.params.get('transformer.h.0.attn.c_attn.weight')!.data;
    assert.equal(st.get('transformer.h.0.attn.c_attn.weight')!.data[1 * 3 * C + 2], w[2 * C + 1]);
    // rename as the Hub's gpt2 checkpoint does, add its causal-mask buffers and a tied lm_head
    const hub = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, v] of st) hub.set(k.replace(/^transformer\./, ''), v);
    hub.set('h.0.attn.bias', { shape: [1, 1, 4, 4], data: new Float32Array(16) });
    hub.set('lm_head.weight', st.get('transformer.wte.weight')!);
    writeSafetensors(join(dir, 'model.safetensors'), hub);
    assert.deepEqual(loadModel(dir).model.flat, m.flat);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a mismatched checkpoint names the tensor and both shapes', () => {
  const dir = tmp();
  try {
    const m = randomModel(LLAMA, 14);
    saveModel(dir, m);
    const path = join(dir, 'model.safetensors');
    const orig = readSafetensors(path);
    const edit = (f: (t: Map<string, { shape: number[]; data: Float32Array }>) => void) => {
      const t = new Map<string, { shape: number[]; data: Float32Array }>(orig);
      f(t);
      writeSafetensors(path, t);
    };
    const name = 'model.layers.1.self_attn.k_proj.weight';
    edit((t) => t.delete(name));
    assert.throws(() => loadModel(dir), (e: any) => e instanceof UserError && e.message.includes(name) && /missing/.test(e.message));
    edit((t) => t.set(name, { shape: [32, 16], data: new Float32Array(512) }));
    assert.throws(() => loadModel(dir), (e: any) => e instanceof UserError && e.message.includes(name) &&
      e.message.includes('[32, 16]') && e.message.includes('[16, 32]'));
    edit((t) => t.set('model.layers.9.extra.weight', { shape: [2], data: new Float32Array(2) }));
    assert.throws(() => loadModel(dir), (e: any) => e instanceof UserError && e.message.includes('model.layers.9.extra.weight'));
    edit((t) => t.set('lm_head.weight', { shape: [53, 32], data: new Float32Array(53 * 32) }));
    assert.throws(() => loadModel(dir), (e: any) => e instanceof UserError && e.message.includes('lm_head.weight'));
    edit((t) => t.set('lm_head.weight', orig.get('model.embed_tokens.weight')!));
    assert.deepEqual(loadModel(dir).model.flat, m.flat, 'a tied lm_head equal to the embedding is accepted');
    rmSync(path);
    assert.throws(() => loadModel(dir), UserError);
    assert.throws(() => loadModel(join(dir, 'nope')), UserError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadModel reads F16 and BF16 weights', () => {
  const dir = tmp();
  try {
    const m = randomModel(LLAMA, 15);
    saveModel(dir, m);
    const st = readSafetensors(join(dir, 'model.safetensors'));
    for (const dtype of ['F16', 'BF16']) {
      const header: Record<string, unknown> = {};
      const chunks: Uint8Array[] = [];
      const expected = new Map<string, Float32Array>();
      let off = 0;
      for (const [name, t] of st) {
        const u16 = new Uint16Array(t.data.length), exp = new Float32Array(t.data.length);
        const u32 = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
        for (let i = 0; i < t.data.length; i++) {
          u16[i] = dtype === 'F16' ? floatToHalf(t.data[i]) : u32[i] >>> 16; // bf16 by truncation
          exp[i] = dtype === 'F16' ? halfToFloat(u16[i]) : new Float32Array(new Uint32Array([u16[i] << 16]).buffer)[0];
        }
        header[name] = { dtype, shape: t.shape, data_offsets: [off, off + u16.byteLength] };
        chunks.push(new Uint8Array(u16.buffer));
        expected.set(name, exp);
        off += u16.byteLength;
      }
      writeFileSync(join(dir, 'model.safetensors'), stFile(header, concat(chunks)));
      const loaded = loadModel(dir).model;
      for (const [name, exp] of expected) assert.deepEqual(loaded.params.get(name)!.data, exp, `${dtype} ${name}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- safetensors format
function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}
function stFile(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const h = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return concat([len, h, data]);
}

test('safetensors: F16 and BF16 decode to the IEEE values', () => {
  // binary16: 0x3c00 = 1, 0xc000 = -2, 0x3555 = 0.333251953125, 0x7bff = 65504 (max), 0x0001 = 2^-24 (min subnormal),
  // 0x7c00 = inf. bfloat16: 0x3f80 = 1, 0x4049 = 3.140625, 0xc2f7 = -123.5, 0x0000 = 0.
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x7c00]);
  const bf16 = new Uint16Array([0x3f80, 0x4049, 0xc2f7, 0x0000]);
  const header = {
    a: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] },
    b: { dtype: 'BF16', shape: [4], data_offsets: [12, 20] },
    __metadata__: { format: 'pt' },
  };
  const t = parseSafetensors(stFile(header, concat([new Uint8Array(f16.buffer), new Uint8Array(bf16.buffer)])));
  assert.deepEqual([...t.get('a')!.data], [1, -2, 0.333251953125, 65504, 2 ** -24, Infinity]);
  assert.deepEqual(t.get('a')!.shape, [2, 3]);
  assert.deepEqual([...t.get('b')!.data], [1, 3.140625, -123.5, 0]);
  assert.equal(floatToHalf(0.333251953125), 0x3555);
  assert.equal(floatToHalf(65504), 0x7bff);
});

test('safetensors: F32 round trip and 8-byte aligned data', () => {
  const tensors = new Map([['x', { shape: [2, 2], data: new Float32Array([1.5, -2, 3e-8, 7]) }], ['y', { shape: [0], data: new Float32Array(0) }]]);
  const bytes = concat(encodeSafetensors(tensors));
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const back = parseSafetensors(bytes);
  assert.deepEqual(back.get('x'), { dtype: 'F32', shape: [2, 2], data: new Float32Array([1.5, -2, 3e-8, 7]) });
  assert.deepEqual(back.get('y')!.shape, [0]);
});

test('safetensors: malformed files are UserErrors that say what is wrong', () => {
  const good = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data = new Uint8Array(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array(5), /shorter than the 8-byte/],
    ['header past the end', (() => { const f = stFile(good, data); Buffer.from(f.buffer).writeBigUInt64LE(10_000n, 0); return f; })(), /past the end/],
    ['bad JSON', stFile(null, data, '{"x": {"dtype": "F32",'), /not valid JSON/],
    ['unknown dtype', stFile({ x: { dtype: 'I8', shape: [8], data_offsets: [0, 8] } }, data), /unsupported dtype "I8"/],
    ['truncated data', stFile(good, data.subarray(0, 5)), /truncated/],
    ['offsets out of range', stFile({ x: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, data), /run past/],
    ['wrong shape for the bytes', stFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data), /needs 12/],
    ['overlapping tensors', stFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data), /overlap/],
    ['reversed offsets', stFile({ x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, data), /invalid data_offsets/],
    ['bad shape', stFile({ x: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data), /invalid shape/],
  ];
  for (const [what, bytes, re] of cases) {
    assert.throws(() => parseSafetensors(bytes, 'f.safetensors'), (e: any) => e instanceof UserError && re.test(e.message),
      `${what} should be a UserError matching ${re}`);
  }
  assert.throws(() => readSafetensors(join(tmpdir(), 'no-such-file.safetensors')), UserError);
});

// ---------------------------------------------------------------- heads, parameters, presets, init
test('scalar head: per-position scores are hidden @ score.weight, and there is no lm_head', () => {
  const c = { ...LLAMA, scalarHead: true };
  const m = randomModel(c, 16);
  assert.ok(m.params.has('score.weight') && !m.params.has('lm_head.weight'));
  assert.deepEqual(m.params.get('score.weight')!.shape, [1, c.nEmbd]);
  const ids = randomIds(10, c.vocabSize, 17);
  const out = noGrad(() => m.forward(ids, 2, 5, { hidden: true }));
  assert.deepEqual(out.scores!.shape, [10]);
  const w = m.params.get('score.weight')!.data, h = out.hidden!.data;
  const want = Array.from({ length: 10 }, (_, i) => { let s = 0; for (let j = 0; j < c.nEmbd; j++) s += h[i * c.nEmbd + j] * w[j]; return s; });
  assertClose(out.scores!.data, want, 'scores');
  const cache = m.newKVCache(2, 8);
  assertClose(m.forwardCached(ids, 2, 5, cache), want, 'cached scores');
});

test('parameters and gradients are views of one flat buffer each; backward fills gradFlat', () => {
  for (const c of [LLAMA, GPT2]) {
    const m = randomModel(c, 18);
    let total = 0;
    for (const [name, p] of m.params) {
      assert.equal(p.data.buffer, m.flat.buffer, `${name} is a view of flat`);
      assert.equal(p.grad!.data.buffer, m.gradFlat.buffer, `${name}.grad is a view of gradFlat`);
      total += p.size;
    }
    assert.equal(total, m.flat.length);
    m.zeroGrad();
    const ids = randomIds(12, c.vocabSize, 19);
    const { loss } = m.forward(ids, 2, 6, { targets: randomIds(12, c.vocabSize, 20) });
    loss!.backward();
    releaseTape();
    for (const [name, p] of m.params) assert.ok(p.grad!.data.some((g) => g !== 0), `${name} got a gradient`);
  }
});

test('presets: sizes as documented, shapes from the config, numParams counts every parameter', () => {
  const expectLlama = (c: GPTConfig) => {
    const C = c.nEmbd, kv = (c.nKvHead * C) / c.nHead, I = c.intermediateSize;
    return c.vocabSize * C * (c.tiedEmbeddings ? 1 : 2) + C + c.nLayer * (2 * C + 2 * C * C + 2 * C * kv + 3 * C * I);
  };
  const sizes: Record<string, [number, number]> = { tiny: [1e6, 2e6], small: [12e6, 18e6], medium: [95e6, 125e6] };
  const vocab: Record<string, number> = { tiny: 4096, small: 8192, medium: 32768 };
  for (const name of Object.keys(PRESETS)) {
    const c = configFromPreset(name, vocab[name]);
    const n = expectLlama(c);
    assert.ok(n >= sizes[name][0] && n <= sizes[name][1], `${name}: ${n} parameters`);
    if (name === 'tiny') assert.equal(GPT.create(c, 0).numParams(), n);
  }
  const g = new GPT(configFromPreset('tiny', 100, { arch: 'gpt2' }));
  const C = 128, L = 4;
  assert.equal(g.numParams(), 100 * C + 256 * C + 2 * C + L * (4 * C + 3 * C * C + 3 * C + C * C + C + 2 * 4 * C * C + 4 * C + C));
  assert.match(g.summary(), /gpt2/);
  assert.throws(() => configFromPreset('huge', 10), UserError);
  assert.throws(() => validateConfig({ ...LLAMA, nHead: 5 }), UserError);
  assert.throws(() => validateConfig({ ...LLAMA, colour: 1 } as any), /unknown key "colour"/);
});

test('init: seeded and deterministic, std 0.02, residual projections 0.02/sqrt(2 nLayer), norms 1', () => {
  const c = { ...LLAMA, nEmbd: 64, intermediateSize: 128, nLayer: 3 };
  const a = GPT.create(c, 42), b = GPT.create(c, 42), d = GPT.create(c, 43);
  assert.deepEqual(a.flat, b.flat);
  assert.notDeepEqual(a.flat, d.flat);
  const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  const sd = (n: string) => std(a.params.get(n)!.data as Float32Array);
  assert.ok(Math.abs(sd('model.layers.0.mlp.up_proj.weight') / 0.02 - 1) < 0.05);
  assert.ok(Math.abs(sd('model.layers.2.mlp.down_proj.weight') / (0.02 / Math.sqrt(6)) - 1) < 0.05);
  assert.ok(Math.abs(sd('model.layers.1.self_attn.o_proj.weight') / (0.02 / Math.sqrt(6)) - 1) < 0.1);
  assert.ok(a.params.get('model.norm.weight')!.data.every((v) => v === 1));
});
