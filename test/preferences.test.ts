// Learning from preferences: the Bradley-Terry and DPO / IPO losses against values computed by hand, their gradients by
// central finite differences in float64 (through the scalar head of a tiny model too), and the batch layout (targets
// only on the answer, the score read at its <|eot|>).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, noGrad, releaseTape, setDefaultDType } from '../src/tensor/index.js';
import { answerRow, answerLogprobs, bradleyTerryLoss, dpoLoss, lastTokenScores, padBatch } from '../src/train/preferences.js';
import { fixtureTokenizer, tinyModel } from './stage-fixture.js';

const logSig = (x: number) => -Math.log1p(Math.exp(-x));

test('Bradley-Terry: -sum w log sigmoid(r_c - r_r - margin), each prompt weighted once (values by hand)', () => {
  // two prompts: the first with pairs (0>1), (0>2), (1>2); the second with one pair (3>4); weights 1/(3*2) and 1/(1*2)
  const r = Tensor.from([2, 1, -1, 0.5, 1.5], [5], true);
  const chosen = Int32Array.of(0, 0, 1, 3), rejected = Int32Array.of(1, 2, 2, 4), w = Float32Array.of(1 / 6, 1 / 6, 1 / 6, 1 / 2);
  const l = bradleyTerryLoss(r, chosen, rejected, w, 0);
  const want = -(logSig(1) + logSig(3) + logSig(2)) / 6 - logSig(-1) / 2;
  assert.ok(Math.abs(l.item() - want) < 1e-6, `${l.item()} vs ${want}`);
  l.backward();
  // d/dr_0 = -(1/6)(sigmoid(-1) + sigmoid(-3)), d/dr_4 = +(1/2) sigmoid(1)
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  assert.ok(Math.abs(r.grad!.data[0] + (sig(-1) + sig(-3)) / 6) < 1e-6, `grad r0 ${r.grad!.data[0]}`);
  assert.ok(Math.abs(r.grad!.data[4] - sig(1) / 2) < 1e-6, `grad r4 ${r.grad!.data[4]}`);
  releaseTape();
  const lm = bradleyTerryLoss(Tensor.from([2, 1], [2]), Int32Array.of(0), Int32Array.of(1), Float32Array.of(1), 0.5);
  assert.ok(Math.abs(lm.item() + logSig(0.5)) < 1e-6, 'margin');
});

test('DPO and IPO: values by hand, and the implicit reward margins', () => {
  // pairs: policy chosen [-3, -5], rejected [-4, -4]; ref chosen [-3.5, -4], rejected [-3.5, -4.5]
  const pol = Tensor.from([-3, -5, -4, -4], [4], true);
  const ref = Float64Array.of(-3.5, -4, -3.5, -4.5);
  const h = [(-3 + 3.5) - (-4 + 3.5), (-5 + 4) - (-4 + 4.5)]; // [1, -1.5]
  const beta = 0.1;
  const d = dpoLoss(pol, ref, beta, 'sigmoid');
  const want = -(logSig(beta * h[0]) + logSig(beta * h[1])) / 2;
  assert.ok(Math.abs(d.loss.item() - want) < 1e-6, `${d.loss.item()} vs ${want}`);
  assert.ok(Math.abs(d.margins[0] - beta * h[0]) < 1e-6 && Math.abs(d.margins[1] - beta * h[1]) < 1e-6);
  d.loss.backward();
  // d/d pol_chosen0 = -(beta/2) sigmoid(-beta h0); d/d pol_rejected0 = +(beta/2) sigmoid(-beta h0)
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  assert.ok(Math.abs(pol.grad!.data[0] + (beta / 2) * sig(-beta * h[0])) < 1e-6, `grad ${pol.grad!.data[0]}`);
  assert.ok(Math.abs(pol.grad!.data[2] - (beta / 2) * sig(-beta * h[0])) < 1e-6, `grad ${pol.grad!.data[2]}`);
  releaseTape();
  const ipo = dpoLoss(Tensor.from([-3, -5, -4, -4], [4]), ref, beta, 'ipo');
  const wantIpo = ((h[0] - 5) ** 2 + (h[1] - 5) ** 2) / 2;
  assert.ok(Math.abs(ipo.loss.item() - wantIpo) < 1e-4, `${ipo.loss.item()} vs ${wantIpo}`);
});

test('batches: targets only on the answer and its <|eot|>, the score read at the <|eot|>', () => {
  const tok = fixtureTokenizer();
  const prompt = [{ role: 'user' as const, content: '写一首五言绝句' }];
  const rows = [answerRow(tok, prompt, '春风花草香'), answerRow(tok, prompt, '迟日江山丽，春风花草香。')];
  const b = padBatch(rows, tok.pad);
  for (let i = 0; i < 2; i++) {
    const r = rows[i];
    assert.equal(r.ids[r.ids.length - 1], tok.eot);
    assert.equal(b.last[i], i * b.T + r.ids.length - 1);
    const tg = Array.from(b.targets.subarray(i * b.T, (i + 1) * b.T));
    assert.deepEqual(tg.filter((x) => x >= 0), r.ids.slice(r.start));
    assert.equal(tg.findIndex((x) => x >= 0), r.start - 1);
    assert.equal(b.answerTokens[i], r.ids.length - r.start);
  }
  // padding after a row changes nothing before it (causal attention): the short row scores the same alone
  const rm = tinyModel(3, { scalarHead: true });
  const both = noGrad(() => Array.from(lastTokenScores(rm, b).data));
  const alone = noGrad(() => lastTokenScores(rm, padBatch([rows[0]], tok.pad)).data[0]);
  releaseTape();
  assert.ok(Math.abs(both[0] - alone) < 1e-5, `${both[0]} vs ${alone}`);
  // answer log-probs: the sum of per-token log-probs equals the sum computed from full softmaxes by hand
  const pm = tinyModel(4);
  const lp = noGrad(() => answerLogprobs(pm, b).data[1]);
  const logits = noGrad(() => pm.forward(b.ids, b.B, b.T).logits.data);
  const V = pm.config.vocabSize;
  let want = 0;
  for (let t = 0; t < b.T; t++) {
    const tg = b.targets[b.T + t];
    if (tg < 0) continue;
    const row = logits.subarray((b.T + t) * V, (b.T + t + 1) * V);
    const m = Math.max(...row);
    want += row[tg] - m - Math.log(Array.from(row).reduce((a, x) => a + Math.exp(x - m), 0));
  }
  releaseTape();
  assert.ok(Math.abs(lp - want) < 1e-3, `${lp} vs ${want}`);
});

test('gradients by central finite differences in float64: BT, DPO and IPO on random inputs', () => {
  setDefaultDType('float64');
  try {
    const fd = (name: string, x: Tensor, lossOf: (x: Tensor) => Tensor) => {
      x.zeroGrad();
      const l = lossOf(x);
      l.backward();
      const g = Array.from(x.grad!.data);
      releaseTape();
      for (let i = 0; i < x.size; i++) {
        const v = x.data[i], eps = 1e-6;
        x.data[i] = v + eps;
        const up = noGrad(() => lossOf(x).item());
        x.data[i] = v - eps;
        const down = noGrad(() => lossOf(x).item());
        x.data[i] = v;
        releaseTape();
        const want = (up - down) / (2 * eps);
        assert.ok(Math.abs(want - g[i]) < 1e-7 + 1e-6 * Math.abs(want), `${name}[${i}]: analytic ${g[i]} vs finite difference ${want}`);
      }
    };
    const r = Tensor.from([0.3, -1.2, 2.5, 0.1, -0.7, 1.9], [6], true);
    fd('BT', r, (x) => bradleyTerryLoss(x, Int32Array.of(0, 2, 2, 5, 3), Int32Array.of(1, 1, 0, 4, 4),
      Float32Array.of(0.2, 0.2, 0.2, 0.2, 0.2), 0.3));
    const p = Tensor.from([-3.1, -5.4, -2.2, -4.0, -4.9, -1.3], [6], true);
    const ref = Float64Array.of(-3.5, -4.2, -2.0, -3.9, -5.0, -2.2);
    fd('DPO', p, (x) => dpoLoss(x, ref, 0.3).loss);
    fd('IPO', p, (x) => dpoLoss(x, ref, 0.3, 'ipo').loss);
  } finally {
    setDefaultDType('float32');
  }
});

test('the scalar head: the gradient of a Bradley-Terry loss through a tiny reward model matches finite differences', () => {
  const tok = fixtureTokenizer();
  const prompt = [{ role: 'user' as const, content: '写诗' }];
  const b = padBatch([answerRow(tok, prompt, '春风'), answerRow(tok, prompt, '江山丽日'), answerRow(tok, prompt, '燕子')], tok.pad);
  const rm = tinyModel(5, { scalarHead: true });
  const lossOf = () => bradleyTerryLoss(lastTokenScores(rm, b), Int32Array.of(0, 1), Int32Array.of(2, 2), Float32Array.of(0.5, 0.5), 0.1);
  rm.zeroGrad();
  lossOf().backward();
  releaseTape();
  for (const [pname, ks] of [['score.weight', [0, 7, 31, 63]], ['model.norm.weight', [3, 40]], ['model.layers.1.mlp.down_proj.weight', [5, 900]]] as const) {
    const off = rm.offsetOf(pname);
    for (const k of ks) {
      const i = off + k, v = rm.flat[i], eps = 1e-2;
      rm.flat[i] = v + eps;
      const up = noGrad(() => lossOf().item());
      rm.flat[i] = v - eps;
      const down = noGrad(() => lossOf().item());
      rm.flat[i] = v;
      releaseTape();
      const want = (up - down) / (2 * eps), g = rm.gradFlat[i];
      assert.ok(Math.abs(want - g) < 2e-5 + 0.03 * Math.abs(want), `${pname}[${k}]: analytic ${g} vs finite difference ${want}`);
    }
  }
});
