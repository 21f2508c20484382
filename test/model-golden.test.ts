// Golden test of the GPT against an independent PyTorch implementation (test/fixtures/make_gpt_fixture.py; README
// there), after llm.c's test_gpt2.c: load the weights through loadModel, compare logits, loss and every parameter
// gradient (printing the max abs diff per named tensor), then take 10 AdamW steps on the same batch and compare the
// losses. Runs on every available backend. Beyond the two styles: the families as the Hub ships them (Llama 3.2 with
// llama3 rope scaling in bf16, Qwen2.5 with q/k/v biases in two bf16 shards, SmolLM in f16, GPT-2 with Hub names and
// causal-mask buffers in f16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getBackend, setBackend, nativeAvailable, releaseTape } from '../src/tensor/index.js';
import { loadModel, toHfTensors } from '../src/model/checkpoint.js';
import { readSafetensors, readSafetensorsMetadata } from '../src/model/safetensors.js';
import { AdamW } from '../src/train/optim.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const MAGIC = 'chatwright-gpt-fixture';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const backends = (['js', 'native'] as const).filter((b) => b === 'js' || nativeAvailable());

for (const style of ['llama', 'gpt2', 'llama3', 'qwen2', 'smollm', 'gpt2_hub']) {
  for (const backend of backends) {
    test(`golden ${style} (${backend} backend): logits, loss, gradients and 10 AdamW steps match PyTorch`, () => {
      const prev = getBackend().name;
      setBackend(backend);
      try {
        const dir = FIXTURES + `gpt_${style}`;
        const ref = JSON.parse(readFileSync(dir + '/reference.json', 'utf8'));
        assert.equal(ref.magic, MAGIC);
        assert.equal(ref.version, 1);
        const meta = readSafetensorsMetadata(dir + '/reference.safetensors');
        assert.equal(meta.magic, MAGIC);
        assert.equal(meta.version, '1');
        const refT = readSafetensors(dir + '/reference.safetensors');
        const { model, info } = loadModel(dir);
        assert.equal(info.dtypes.join(), ref.stored_dtype ?? 'F32', 'the stored dtype is reported');
        assert.equal(info.files.length, ref.shards ?? 1, 'every shard is read');
        if (info.dtypes.join() !== 'F32') assert.match(info.note ?? '', /converted to float32 in memory/);
        const { B, T } = ref;
        const ids = Int32Array.from(ref.ids), targets = Int32Array.from(ref.targets);
        const weights = Float32Array.from(ref.weights);

        // ---- forward + backward
        model.zeroGrad();
        const { logits, loss } = model.forward(ids, B, T, { targets, weights });
        const refLogits = refT.get('logits')!.data;
        const dLogits = maxDiff(logits.data, refLogits);
        const lossVal = loss!.item();
        console.log(`[${style}/${backend}] logits maxdiff ${dLogits.toExponential(2)} (max |logit| ${maxAbs(refLogits).toFixed(3)}); ` +
          `loss ${lossVal.toFixed(6)} vs ${ref.loss.toFixed(6)}`);
        assert.ok(dLogits <= 1e-4 * Math.max(1, maxAbs(refLogits)), `logits differ by ${dLogits}`);
        assert.ok(Math.abs(lossVal - ref.loss) <= 1e-4 * Math.abs(ref.loss), `loss ${lossVal} != ${ref.loss}`);
        loss!.backward();
        const grads = toHfTensors(model, model.gradFlat);
        const refGradNames = [...refT.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
        assert.deepEqual([...grads.keys()].sort(), refGradNames.sort(), 'parameter names differ from the fixture');
        let worst = 0;
        for (const [name, g] of grads) {
          const r = refT.get('grad.' + name)!;
          assert.deepEqual(g.shape, r.shape, `gradient shape of ${name}`);
          const d = maxDiff(g.data, r.data), scale = maxAbs(r.data);
          worst = Math.max(worst, d / Math.max(scale, 1e-3));
          console.log(`  grad ${name.padEnd(44)} maxdiff ${d.toExponential(2)}  (max |g| ${scale.toExponential(2)})`);
          assert.ok(d <= 1e-4 * Math.max(scale, 1e-3), `gradient of ${name} differs by ${d} (max |g| ${scale})`);
        }
        console.log(`[${style}/${backend}] worst gradient maxdiff relative to the tensor's max |g|: ${worst.toExponential(2)}`);
        releaseTape();

        // ---- 10 AdamW steps on the same batch (chatwright's optimizer; the fixture decays weight matrices only)
        const a = ref.adamw;
        const opt = new AdamW(model, { beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weight_decay });
        const losses: number[] = [];
        for (let step = 0; step < a.steps; step++) {
          model.zeroGrad();
          const out = model.forward(ids, B, T, { targets, weights });
          losses.push(out.loss!.item());
          out.loss!.backward();
          releaseTape();
          opt.step(a.lr);
        }
        const lossDiffs = losses.map((l, i) => Math.abs(l - a.losses[i]));
        console.log(`[${style}/${backend}] AdamW losses ${losses.map((l) => l.toFixed(5)).join(' ')}`);
        console.log(`[${style}/${backend}] reference    ${a.losses.map((l: number) => l.toFixed(5)).join(' ')}; ` +
          `max diff ${maxAbs(lossDiffs).toExponential(2)}`);
        for (let i = 0; i < losses.length; i++) {
          assert.ok(lossDiffs[i] <= 1e-4 * Math.abs(a.losses[i]) + 1e-5, `AdamW step ${i}: loss ${losses[i]} != ${a.losses[i]}`);
        }
      } finally {
        setBackend(prev);
      }
    });
  }
}
