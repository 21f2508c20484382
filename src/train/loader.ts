// Deterministic (B, T) batches of next-token pairs from a token stream. Knows token ids, not text or models.
//
// The stream is cut into non-overlapping windows of T + 1 tokens at offsets 0, T, 2T, ... (window w gives inputs
// tokens[wT .. wT + T) and targets shifted by one). Each epoch visits every window once, in an order drawn from
// Rng(seed, epoch). The cursor {epoch, index} is all the state there is, so a loader rebuilt from (tokens, B, T, seed)
// at a saved cursor continues exactly where the saved one stopped.
//
// The tokens are an array in memory or a ShardStream reading the shard files as it goes (src/train/shards.ts): the
// loader only asks for windows (subarray), so both give the same batches and a cursor resumes either.
//
// API: new BatchLoader(tokens, B, T, seed, cursor?) ; next() -> { ids, targets } (Int32Array B*T) ; cursor
//      evalBatches(tokens, B, T, maxBatches) -> the fixed sequence of validation batches (no shuffling)
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { Tokens } from './shards.js';

export interface Batch { ids: Int32Array; targets: Int32Array; B: number; T: number }
export interface Cursor { epoch: number; index: number }

export function numWindows(nTokens: number, T: number): number {
  return nTokens > T ? Math.floor((nTokens - 1) / T) : 0;
}

export class BatchLoader {
  private order: Int32Array;
  private epoch: number;
  private index: number;
  readonly windows: number;

  constructor(
    private readonly tokens: Tokens,
    readonly B: number,
    readonly T: number,
    private readonly seed: number,
    cursor: Cursor = { epoch: 0, index: 0 },
  ) {
    this.windows = numWindows(tokens.length, T);
    if (this.windows === 0) {
      throw new UserError(`the training split has ${tokens.length} tokens, too few for one sequence of ${T} + 1`,
        'use a larger corpus or a smaller --seq-len');
    }
    if (!(cursor.index >= 0 && cursor.index <= this.windows)) {
      // a cursor other than the start comes from a checkpoint's trainer_state.json
      throw new UserError(`the data cursor ${JSON.stringify(cursor)} (saved in trainer_state.json) is outside the ${this.windows} windows of this data`,
        'the data changed since the checkpoint was written; resume with the same --data and --seq-len, or start over with --no-resume');
    }
    this.epoch = cursor.epoch;
    this.index = cursor.index;
    this.order = this.permutation(this.epoch);
  }

  get cursor(): Cursor {
    return { epoch: this.epoch, index: this.index };
  }

  private permutation(epoch: number): Int32Array {
    const order = new Int32Array(this.windows);
    for (let i = 0; i < order.length; i++) order[i] = i;
    // one stream per (seed, epoch); the multiplier keeps (seed, epoch) pairs apart
    return new Rng(this.seed * 1000003 + epoch).shuffle(order);
  }

  next(): Batch {
    const { B, T } = this;
    const ids = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      if (this.index >= this.windows) {
        this.epoch++;
        this.index = 0;
        this.order = this.permutation(this.epoch);
      }
      const start = this.order[this.index++] * T, w = this.tokens.subarray(start, start + T + 1);
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = w[t];
        targets[b * T + t] = w[t + 1];
      }
    }
    return { ids, targets, B, T };
  }
}

// Validation: the first min(windows, B * maxBatches) windows in order, in batches of up to B rows.
export function evalBatches(tokens: Tokens, B: number, T: number, maxBatches: number): Batch[] {
  const n = Math.min(numWindows(tokens.length, T), B * maxBatches);
  const out: Batch[] = [];
  for (let w0 = 0; w0 < n; w0 += B) {
    const rows = Math.min(B, n - w0);
    const ids = new Int32Array(rows * T);
    const targets = new Int32Array(rows * T);
    for (let b = 0; b < rows; b++) {
      const start = (w0 + b) * T, w = tokens.subarray(start, start + T + 1);
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = w[t];
        targets[b * T + t] = w[t + 1];
      }
    }
    out.push({ ids, targets, B: rows, T });
  }
  return out;
}
