// The RL nouns (src/train/rl.ts) against values computed by hand: KL estimators, per-token rewards, GAE, whitening, group
// advantages, the adaptive KL controller, PPO's clipped policy and value losses (with their gradients), GRPO's KL term;
// and the entropy op's gradient by central finite differences in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, entropy, noGrad, releaseTape, setDefaultDType, sum, mul } from '../src/tensor/index.js';
import {
  AdaptiveKL, clippedPolicyLoss, clippedValueLoss, gae, groupAdvantages, klEstimate, klPenalty, tokenRewards, whiten,
} from '../src/train/rl.js';

const close = (a: number, b: number, tol = 1e-6, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);
const closeAll = (a: ArrayLike<number>, b: number[], tol = 1e-6, what = '') => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < b.length; i++) close(a[i], b[i], tol, `${what}[${i}]`);
};

test('KL estimators k1, k2, k3 and the per-token reward', () => {
  close(klEstimate('k1', -1, -1.5), 0.5);
  close(klEstimate('k2', -1, -1.5), 0.125);
  close(klEstimate('k3', -1, -1.5), Math.exp(-0.5) - 0.5, 1e-9);
  assert.ok(klEstimate('k3', -2, -1) > 0, 'k3 is never negative');
  closeAll(tokenRewards([-1, -2, -0.5], [-1.5, -2, -1], 2, 0.1), [-0.05, 0, 1.95], 1e-12);
});

test('GAE, returns and whitening', () => {
  const { advantages, returns } = gae([0, 0, 1], [0.5, 0.4, 0.3], 1, 0.95);
  closeAll(advantages, [0.43675, 0.565, 0.7], 1e-12, 'A');
  closeAll(returns, [0.93675, 0.965, 1.0], 1e-12, 'R');
  const g = gae([1, 2], [0, 0], 0.5, 1); // discounted: A1 = 2, A0 = 1 + 0.5 * 2
  closeAll(g.advantages, [2, 2], 1e-12, 'discounted');
  const s = Math.sqrt(5 / 3);
  closeAll(whiten([1, 2, 3, 4]), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-6, 'whiten');
  closeAll(whiten([1, 2, 3, 4], false), [2.5 - 1.5 / s, 2.5 - 0.5 / s, 2.5 + 0.5 / s, 2.5 + 1.5 / s], 1e-6, 'whiten keep mean');
  closeAll(groupAdvantages([1, 0, 0, 1]), [0.5 / 0.5001, -0.5 / 0.5001, -0.5 / 0.5001, 0.5 / 0.5001], 1e-9, 'group');
  closeAll(groupAdvantages([3, 3]), [0, 0], 0, 'equal rewards');
});

test('adaptive KL controller (Ziegler et al. 2019)', () => {
  const c = new AdaptiveKL(0.2, 6, 10000);
  close(c.update(9, 256), 0.2 * (1 + 0.2 * 256 / 10000), 1e-12); // error clipped at +0.2
  close(c.update(5.4, 100), 0.2 * (1 + 0.2 * 256 / 10000) * (1 - 0.1 * 100 / 10000), 1e-12);
});

test("PPO's clipped surrogate and value losses: values, clip fractions and gradients by hand", () => {
  const lp = Tensor.from([Math.log(1.5), Math.log(0.5), Math.log(1.1)], [3], true);
  const third = Float32Array.of(1 / 3, 1 / 3, 1 / 3);
  const p = clippedPolicyLoss(lp, Float32Array.of(0, 0, 0), Float32Array.of(1, 1, -1), third, 0.2);
  close(p.loss.item(), (-1.2 - 0.5 + 1.1) / 3, 1e-6, 'loss');
  close(p.clipFraction, 1 / 3, 1e-6, 'clip fraction');
  p.loss.backward();
  closeAll(lp.grad!.data, [0, -0.5 / 3, 1.1 / 3], 1e-6, 'grad'); // clipped token: no gradient
  releaseTape();
  const v = Tensor.from([1.0, 0.2, 0.45], [3], true);
  const w = Float32Array.of(0.4, 0.4, 0.2);
  const vl = clippedValueLoss(v, Float32Array.of(0.5, 0.5, 0.5), Float32Array.of(1.2, 0, 0.4), w, 0.2);
  close(vl.loss.item(), 0.5 * (0.4 * 0.25 + 0.4 * 0.09 + 0.2 * 0.0025), 1e-6, 'value loss');
  close(vl.clipFraction, 0.8, 1e-6, 'value clip fraction');
  vl.loss.backward();
  closeAll(v.grad!.data, [0, 0, 0.5 * 0.2 * 2 * 0.05], 1e-6, 'value grad'); // only the unclipped third moves
  releaseTape();
  const l2 = Tensor.from([-1], [1], true);
  const k = klPenalty(l2, Float32Array.of(-1.5), Float32Array.of(1));
  close(k.item(), Math.exp(-0.5) + 0.5 - 1, 1e-6, 'k3 term');
  k.backward();
  close(l2.grad!.data[0], 1 - Math.exp(-0.5), 1e-6, 'k3 grad');
  releaseTape();
});

test('entropy of softmax rows: values and gradient by central finite differences in float64', () => {
  setDefaultDType('float64');
  try {
    const z = Tensor.from([0.1, -1, 2, 0.5, 3, 3, 3, -20], [2, 4], true);
    const h = entropy(z);
    const p = (row: number[]) => { const e = row.map(Math.exp); const s = e.reduce((a, x) => a + x); return e.map((x) => x / s); };
    const H = (row: number[]) => -p(row).reduce((a, q) => a + q * Math.log(q), 0);
    closeAll(h.data, [H([0.1, -1, 2, 0.5]), H([3, 3, 3, -20])], 1e-9, 'H');
    const wts = Tensor.from([0.7, -1.3], [2]);
    sum(mul(h, wts)).backward();
    const g = Array.from(z.grad!.data);
    releaseTape();
    for (let i = 0; i < 8; i++) {
      const x = z.data[i], eps = 1e-6;
      z.data[i] = x + eps;
      const up = noGrad(() => sum(mul(entropy(z), wts)).item());
      z.data[i] = x - eps;
      const down = noGrad(() => sum(mul(entropy(z), wts)).item());
      z.data[i] = x;
      releaseTape();
      close(g[i], (up - down) / (2 * eps), 1e-7, `dH/dz[${i}]`);
    }
  } finally {
    setDefaultDType('float32');
  }
});
