// AdamW over a model's flat parameter buffer, and gradient clipping by global norm. Knows flat Float32Arrays and
// parameter names, not the model's math.
//
// AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019), Algorithm 2; the update itself is the
// Backend's `adamw` primitive, called once per contiguous run of parameters in a group (llm.c `gpt2_update` is one loop
// over one buffer; groups only split it where the weight decay differs).
// Parameter groups (nanoGPT `configure_optimizers`; Karpathy's minGPT note on decay): matmul weights decay; norms,
// biases and embedding tables do not, unless `decayAll` is set. A tied lm_head is the embedding table and so does not
// decay; an untied lm_head is a matmul weight and does.
//
// API: new AdamW(model, cfg) ; step(lr) ; m, v (moments, flat) ; t (steps taken) ; groups
//      clipGradNorm(grad, maxNorm) -> the norm before clipping
import type { Tensor } from '../tensor/index.js';
import { getBackend } from '../tensor/index.js';
import type { Backend } from '../tensor/backend.js';
import { UserError } from '../util/errors.js';

export interface AdamWConfig {
  beta1: number;        // 0.9
  beta2: number;        // 0.95 (nanoGPT / GPT-3 for language models)
  eps: number;          // 1e-8
  weightDecay: number;  // 0.1
  decayAll?: boolean;   // decay norms, biases and embeddings too
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export interface Range { offset: number; length: number }
export interface ParamGroup { weightDecay: number; ranges: Range[]; names: string[] }

export interface FlatModel {
  readonly params: Map<string, Tensor>;
  readonly flat: Float32Array;
  readonly gradFlat: Float32Array;
  // GPT's parameter table; when present its `kind` decides the group ('matrix' decays), else the name and shape do
  readonly layout?: readonly { name: string; kind: string }[];
}

// Names of parameters that are embedding tables (HF llama and gpt2 naming).
const EMBEDDING = /(^|\.)(embed_tokens|wte|wpe|embed_positions)\.weight$/;

export function decays(name: string, shape: number[]): boolean {
  return shape.length >= 2 && !EMBEDDING.test(name);
}

// Splits the flat buffer into groups by weight decay; adjacent parameters of one group merge into one range.
export function paramGroups(model: FlatModel, weightDecay: number, decayAll = false): ParamGroup[] {
  const decay: ParamGroup = { weightDecay, ranges: [], names: [] };
  const noDecay: ParamGroup = { weightDecay: 0, ranges: [], names: [] };
  const entries = [...model.params.entries()].map(([name, p]) => {
    if (p.data.buffer !== model.flat.buffer) throw new Error(`parameter ${name} is not a view of the model's flat buffer`);
    return { name, p, offset: (p.data.byteOffset - model.flat.byteOffset) / 4 };
  });
  entries.sort((a, b) => a.offset - b.offset);
  const kinds = new Map(model.layout?.map((x) => [x.name, x.kind]) ?? []);
  let covered = 0;
  for (const { name, p, offset } of entries) {
    const kind = kinds.get(name);
    const g = decayAll || (kind !== undefined ? kind === 'matrix' : decays(name, p.shape)) ? decay : noDecay;
    g.names.push(name);
    const last = g.ranges[g.ranges.length - 1];
    if (last && last.offset + last.length === offset) last.length += p.size;
    else g.ranges.push({ offset, length: p.size });
    covered += p.size;
  }
  if (covered !== model.flat.length) {
    throw new Error(`parameters cover ${covered} of the flat buffer's ${model.flat.length} values`);
  }
  return [decay, noDecay].filter((g) => g.ranges.length > 0);
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly groups: ParamGroup[];
  t = 0; // optimizer steps taken; bias correction uses t + 1 on the next step

  constructor(private readonly model: FlatModel, readonly cfg: AdamWConfig = ADAMW_DEFAULTS, private readonly backend?: Backend) {
    this.m = new Float32Array(model.flat.length);
    this.v = new Float32Array(model.flat.length);
    this.groups = paramGroups(model, cfg.weightDecay, cfg.decayAll);
  }

  step(lr: number): void {
    const be = this.backend ?? getBackend();
    const { flat, gradFlat } = this.model;
    const { beta1, beta2, eps } = this.cfg;
    this.t++;
    for (const g of this.groups) {
      for (const { offset: o, length: n } of g.ranges) {
        be.adamw(flat.subarray(o, o + n), gradFlat.subarray(o, o + n), this.m.subarray(o, o + n), this.v.subarray(o, o + n),
          n, lr, beta1, beta2, eps, g.weightDecay, this.t);
      }
    }
  }
}

// Scales grad in place so its L2 norm is at most maxNorm (maxNorm <= 0: no clipping); returns the norm before clipping
// (torch.nn.utils.clip_grad_norm_ semantics, including the 1e-6 in the scale).
export function clipGradNorm(grad: Float32Array, maxNorm: number, backend: Backend = getBackend()): number {
  const norm = Math.sqrt(backend.sumSquares(grad, grad.length));
  if (maxNorm > 0 && norm > maxNorm && Number.isFinite(norm)) {
    backend.scaleShift(grad, grad, maxNorm / (norm + 1e-6), 0, grad.length);
  }
  return norm;
}

// The end of every training step: clip the gradients to clip (a non-finite norm stops the run, see checkFinite, with
// `hint`), then the optimizer step at lr. Returns the norm before clipping.
export function clipAndStep(opt: AdamW, grad: Float32Array, clip: number, lr: number, step: number, hint: string,
  backend: Backend = getBackend()): number {
  const norm = clipGradNorm(grad, clip, backend);
  checkFinite('gradient norm', norm, step, lr, hint);
  opt.step(lr);
  return norm;
}

// Divergence guard of a training step: a non-finite loss or gradient norm stops the run before the optimizer step and
// before any save, so the last checkpoint stays good. `hint` says what to change.
export function checkFinite(what: 'loss' | 'gradient norm', value: number, step: number, lr: number, hint: string): void {
  if (!Number.isFinite(value)) {
    throw new UserError(`the ${what} became ${value} at step ${step} (lr ${lr.toExponential(2)}); training diverged`, hint);
  }
}
