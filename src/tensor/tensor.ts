// Tensor, the autograd tape and the buffer pool.
//
// Boundary: this file knows how gradients flow (a dynamic graph recorded as ops run, walked in reverse topological
// order from a scalar) and where buffers come from; it knows no math: each op (ops.ts) supplies a backward closure
// that calls Backend primitives. Design after micrograd/tinygrad (a node per op output holding its inputs and a
// backward closure) with llm.c's memory discipline (activations and gradients in reused buffers).
//
// Memory: while gradients are recorded, every op output, every buffer saved for backward and every intermediate
// gradient is taken from a pool keyed by (dtype, length). releaseTape() returns the forward buffers of the graph to
// the pool (backward() returns the intermediate gradients as soon as they are consumed), so after one warm-up step a
// training step takes every buffer from the pool and allocates no new typed array: poolStats().freshAllocations
// stops growing. Tensors of a released graph are invalidated (their data becomes empty): using one throws.
// One more saving: when a loss is the only reader of its logits (the output of a linear), backward writes the
// logits' gradient over the logits themselves (gradInPlaceOfData), so no second (N, V) buffer exists; those logits
// are invalidated at that moment, so read them before backward(). And an op whose input gradient is its output
// gradient, as is or transformed in place (the residual adds, scalar ops, rope), hands that buffer on to the input
// (adoptGrad) instead of copying it into a fresh, zeroed one.
// Under noGrad, op outputs are ordinary arrays owned by the caller (garbage-collected, never pooled).

import type { FloatArray } from './backend.js';

export type DType = 'float32' | 'float64';

let defaultDType: DType = 'float32';

// float64 is for finite-difference gradient checks on the JS backend; the native backend takes Float32Array only.
export function setDefaultDType(d: DType): void {
  if (d !== 'float32' && d !== 'float64') throw new Error(`setDefaultDType: unknown dtype '${String(d)}'`);
  defaultDType = d;
}
export function getDefaultDType(): DType {
  return defaultDType;
}
export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? 'float64' : 'float32';
}

// ---- buffer pool

const freeF32 = new Map<number, Float32Array[]>();
const freeF64 = new Map<number, Float64Array[]>();
let freshAllocations = 0;
let pooledBytes = 0; // bytes currently sitting in the free lists
const EMPTY_F32 = new Float32Array(0);
const EMPTY_F64 = new Float64Array(0);

// A new array owned by the caller; counted, so a test can see that a warm training step allocates none.
export function allocArray(dtype: DType, n: number): FloatArray {
  freshAllocations++;
  return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

// A buffer of n elements from the pool; its contents are whatever the last user left.
export function takeBuffer(dtype: DType, n: number): FloatArray {
  const list = dtype === 'float64' ? freeF64.get(n) : freeF32.get(n);
  const b = list?.pop();
  if (b) {
    pooledBytes -= b.byteLength;
    return b;
  }
  return allocArray(dtype, n);
}

export function giveBuffer(b: FloatArray): void {
  if (b.length === 0) return;
  if (b instanceof Float64Array) {
    let list = freeF64.get(b.length);
    if (!list) freeF64.set(b.length, (list = []));
    list.push(b);
  } else {
    let list = freeF32.get(b.length);
    if (!list) freeF32.set(b.length, (list = []));
    list.push(b);
  }
  pooledBytes += b.byteLength;
}

// ---- recording state

let gradEnabled = true;
const liveBuffers: FloatArray[] = []; // pooled buffers of the current graph (op outputs, saved-for-backward)
const liveTensors: Tensor[] = []; // tensors whose data is one of them, invalidated by releaseTape()
let liveBytes = 0;
let warnedLive = false;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

// Runs fn without recording a graph. For a synchronous fn: the flag is restored when fn returns, before any promise
// it returns settles.
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// A pooled buffer that belongs to the current graph until releaseTape().
export function takeLive(dtype: DType, n: number): FloatArray {
  const b = takeBuffer(dtype, n);
  liveBuffers.push(b);
  liveBytes += b.byteLength;
  if (!warnedLive && liveBytes > 8 * 2 ** 30) {
    warnedLive = true;
    process.stderr.write('chatwright: the autograd tape holds over 8 GiB; call releaseTape() after each step, ' +
      'and run inference under noGrad()\n');
  }
  return b;
}

// Returns the buffers of the recorded graph to the pool and invalidates the tensors that used them. Call it once a
// step is done with them (after the optimizer step); read loss.item() first.
export function releaseTape(): void {
  for (const t of liveTensors) {
    t.data = t.data instanceof Float64Array ? EMPTY_F64 : EMPTY_F32;
    t._ctx = null;
  }
  for (const b of liveBuffers) giveBuffer(b);
  liveTensors.length = 0;
  liveBuffers.length = 0;
  liveBytes = 0;
}

// Drops the free lists (e.g. after a change of batch shapes), so the garbage collector can take them.
export function clearPool(): void {
  freeF32.clear();
  freeF64.clear();
  pooledBytes = 0;
}

export interface PoolStats {
  freshAllocations: number; // typed arrays allocated by the tensor engine since start
  pooledBytes: number; // bytes in the free lists
  liveBuffers: number; // buffers held by the current graph
  liveBytes: number;
}
export function poolStats(): PoolStats {
  return { freshAllocations, pooledBytes, liveBuffers: liveBuffers.length, liveBytes };
}

// ---- graph nodes

// The recipe to push an output's gradient to its inputs. backward(g) accumulates into gradOf(input) for each input.
// alias: the output is a view of that tensor, so the two share one gradient buffer and backward is a no-op.
// outputFree: backward never reads the output's data (linear, matmul), so the output buffer may be reused for its
// own gradient (see gradInPlaceOfData).
export interface Node {
  inputs: Tensor[];
  backward: (g: FloatArray) => void;
  alias?: Tensor;
  outputFree?: boolean;
}

function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`tensor: bad shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export class Tensor {
  data: FloatArray;
  shape: number[];
  grad: Tensor | null = null;
  requiresGrad: boolean;
  /** @internal the op that made this tensor (null for leaves) */
  _ctx: Node | null = null;
  /** @internal data is a pooled buffer of the current graph */
  _pooled = false;
  private readonly _size: number;

  // Wraps data without copying (a subarray view of a flat buffer is fine).
  constructor(data: FloatArray, shape: number[], requiresGrad = false) {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new Error(`Tensor: data has ${data.length} elements but shape ${fmtShape(shape)} needs ${n}`);
    }
    this.data = data;
    this.shape = shape.slice();
    this.requiresGrad = requiresGrad;
    this._size = n;
  }

  static zeros(shape: number[], requiresGrad = false): Tensor {
    return new Tensor(allocArray(defaultDType, shapeSize(shape)), shape, requiresGrad);
  }

  static from(values: ArrayLike<number>, shape: number[], requiresGrad = false): Tensor {
    const n = shapeSize(shape);
    if (values.length !== n) {
      throw new Error(`Tensor.from: ${values.length} values but shape ${fmtShape(shape)} needs ${n}`);
    }
    const data = allocArray(defaultDType, n);
    for (let i = 0; i < n; i++) data[i] = values[i];
    return new Tensor(data, shape, requiresGrad);
  }

  get size(): number {
    return this._size;
  }

  get dtype(): DType {
    return dtypeOf(this.data);
  }

  item(): number {
    checkLive('item', 'this', this);
    if (this._size !== 1) throw new Error(`item: tensor has shape ${fmtShape(this.shape)}, not a single element`);
    return this.data[0];
  }

  // Same data under another shape (one dimension may be -1); gradients flow through.
  view(shape: number[]): Tensor {
    checkLive('view', 'this', this);
    const s = shape.slice();
    const free = s.indexOf(-1);
    if (free >= 0) {
      const rest = s.reduce((p, d, i) => (i === free ? p : p * d), 1);
      s[free] = rest > 0 ? this._size / rest : 0;
    }
    if (!s.every((d) => Number.isInteger(d) && d >= 0) || shapeSize(s) !== this._size) {
      throw new Error(`view: cannot view shape ${fmtShape(this.shape)} as ${fmtShape(shape)}`);
    }
    const out = new Tensor(this.data, s);
    if (this._pooled) trackLive(out);
    if (gradEnabled && this.requiresGrad) {
      out.requiresGrad = true;
      out._ctx = { inputs: [this], backward: () => {}, alias: this };
    }
    return out;
  }

  // Same data, no gradient. A detached tensor of a recorded graph is released with it: copy it to keep it.
  detach(): Tensor {
    const out = new Tensor(this.data, this.shape);
    if (this._pooled) trackLive(out);
    return out;
  }

  zeroGrad(): void {
    if (this.grad) this.grad.data.fill(0);
  }

  // Back-propagates from this scalar. Leaves get their gradient added into .grad in place (created when null).
  backward(): void {
    checkLive('backward', 'this', this);
    if (this._size !== 1) throw new Error(`backward: needs a scalar, got shape ${fmtShape(this.shape)}`);
    if (!this.requiresGrad) throw new Error('backward: this tensor does not require grad (was it computed under noGrad?)');
    runBackward(this);
  }
}

function trackLive(t: Tensor): void {
  t._pooled = true;
  liveTensors.push(t);
}

// Throws when t's buffer was released (or replaced by one of the wrong length).
export function checkLive(op: string, arg: string, t: Tensor): void {
  if (t.data.length !== t.size) {
    if (t.data.length === 0) {
      throw new Error(`${op}: ${arg} was released by releaseTape() (its buffer went back to the pool), or backward() ` +
        'reused it for its gradient (logits of a loss); read what you need before backward and releaseTape');
    }
    throw new Error(`${op}: ${arg} has ${t.data.length} elements of data for shape ${fmtShape(t.shape)}`);
  }
}

// ---- making op outputs

// Whether an op over these inputs records a node.
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

// A buffer for an op's output or saved state: pooled and live when the op is recorded, else owned by the caller.
export function outBuffer(dtype: DType, n: number, recorded: boolean): FloatArray {
  return recorded ? takeLive(dtype, n) : allocArray(dtype, n);
}

// Wraps an op's output; when recorded, attaches the node.
export function makeResult(data: FloatArray, shape: number[], recorded: boolean, inputs: Tensor[],
  backward: (g: FloatArray) => void, outputFree = false): Tensor {
  const out = new Tensor(data, shape);
  if (recorded) {
    trackLive(out);
    out.requiresGrad = true;
    out._ctx = outputFree ? { inputs, backward, outputFree } : { inputs, backward };
  }
  return out;
}

// ---- backward pass

let grads: Map<Tensor, FloatArray> | null = null;
let consumers: Map<Tensor, number> | null = null; // per tensor (views resolved): the graph's nodes that read it
let borrowed: Set<FloatArray> | null = null; // gradient buffers that are forward buffers: released by releaseTape
let adopted: Set<FloatArray> | null = null; // gradient buffers handed by the node being run to one of its inputs

function resolve(t: Tensor): Tensor {
  while (t._ctx?.alias) t = t._ctx.alias;
  return t;
}

// The gradient buffer of t to accumulate (+=) into, or null when t needs no gradient. Only valid inside backward.
export function gradOf(t: Tensor): FloatArray | null {
  if (!t.requiresGrad || !grads) return null;
  const r = resolve(t);
  let g = grads.get(r);
  if (g) return g;
  if (!r._ctx) {
    if (!r.grad) r.grad = new Tensor(allocArray(dtypeOf(r.data), r.size), r.shape);
    if (r.grad.data.length !== r.size) {
      throw new Error(`backward: .grad of a ${fmtShape(r.shape)} tensor has ${r.grad.data.length} elements`);
    }
    g = r.grad.data;
  } else {
    g = takeBuffer(dtypeOf(r.data), r.size);
    g.fill(0);
  }
  grads.set(r, g);
  return g;
}

// Like gradOf, but when nothing has been accumulated into t's gradient yet the buffer comes back unzeroed with
// fresh = true, so an op whose backward primitive overwrites (crossEntropyBackward) can write straight into it.
export function gradForOverwrite(t: Tensor): { buf: FloatArray; fresh: boolean } | null {
  if (!t.requiresGrad || !grads) return null;
  const r = resolve(t);
  const g = grads.get(r);
  if (g || !r._ctx) return { buf: gradOf(r)!, fresh: false };
  const b = takeBuffer(dtypeOf(r.data), r.size);
  grads.set(r, b);
  return { buf: b, fresh: true };
}

// The forward buffer of t itself as t's gradient buffer, when that is safe: t (or the tensor it views) is an
// intermediate whose only reader in the graph is the caller's node, whose producer's backward never reads it
// (outputFree), and nothing has been accumulated into its gradient yet. The buffer comes back unzeroed, for a
// primitive that overwrites and may alias its input (crossEntropyBackward: "the logits are the largest buffer").
// Every tensor over that buffer (t, its base, their views and detached copies) is invalidated (its data becomes
// empty), so a later read throws instead of seeing gradients.
export function gradInPlaceOfData(t: Tensor): FloatArray | null {
  if (!t.requiresGrad || !grads || !consumers || !borrowed) return null;
  const r = resolve(t);
  if (!r._ctx || !r._ctx.outputFree || !r._pooled || grads.has(r) || consumers.get(r) !== 1) return null;
  const buf = r.data;
  if (buf.length !== r.size) return null;
  grads.set(r, buf);
  borrowed.add(buf);
  const empty = buf instanceof Float64Array ? EMPTY_F64 : EMPTY_F32;
  for (const lt of liveTensors) if (lt.data === buf) lt.data = empty; // r, t, and any view or detached copy
  return buf;
}

// Whether adoptGrad(t, g) would succeed: t is an intermediate (a leaf's gradient is its own .grad buffer) that needs a
// gradient, nothing has been accumulated into it yet, and g, the gradient the running node received, is a pooled
// gradient buffer of t's size (not a borrowed forward buffer, not already handed on).
export function canAdoptGrad(t: Tensor, g: FloatArray): boolean {
  if (!t.requiresGrad || !grads || !adopted || !borrowed) return false;
  const r = resolve(t);
  return !!r._ctx && !grads.has(r) && !borrowed.has(g) && !adopted.has(g) && g.length === r.size;
}

// Hands g, the gradient buffer the running node received, to input t as t's gradient instead of copying it there:
// a node's gradient is spent once its backward returns, so an op whose input gradient is its output gradient, as
// is or transformed in place (add, sub, scalar ops, rope), moves the buffer and saves a copy or a zero-fill and an
// accumulate. Call it after the closure's last read of g as the output gradient. Returns false (nothing done) when
// canAdoptGrad is false; the caller then accumulates as usual.
export function adoptGrad(t: Tensor, g: FloatArray): boolean {
  if (!canAdoptGrad(t, g)) return false;
  grads!.set(resolve(t), g);
  adopted!.add(g);
  return true;
}

// Every tensor that needs a gradient and that root depends on, inputs before outputs (iterative DFS).
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t._ctx ? t._ctx.inputs : [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

function runBackward(root: Tensor): void {
  if (grads) throw new Error('backward: already running (an op called backward from inside a backward)');
  const order = topoOrder(root);
  grads = new Map();
  borrowed = new Set();
  adopted = new Set();
  consumers = new Map();
  for (const t of order) {
    if (!t._ctx || t._ctx.alias) continue; // a view is not a reader: its readers are counted against its base
    for (const c of t._ctx.inputs) {
      const r = resolve(c);
      consumers.set(r, (consumers.get(r) ?? 0) + 1);
    }
  }
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    gradOf(root)![0] += 1;
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const ctx = t._ctx;
      if (!ctx || ctx.alias) continue; // leaf, or a view sharing its base's gradient
      const g = grads.get(t);
      if (!g) continue; // no gradient reached it
      ctx.backward(g);
      // every consumer of t ran before t: its gradient is spent, unless an input adopted it (adoptGrad)
      if (adopted.has(g)) adopted.delete(g);
      else if (!borrowed.has(g)) giveBuffer(g);
      grads.delete(t);
    }
  } finally {
    grads = null;
    consumers = null;
    borrowed = null;
    adopted = null;
    gradEnabled = prev;
  }
}
