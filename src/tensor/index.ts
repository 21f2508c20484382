// The tensor engine's public face: Tensor and autograd (tensor.ts), the ops (ops.ts, nn.ts), the backend registry
// (registry.ts) and the Backend interface (backend.ts). Everything outside src/tensor/ imports from here.

export type { Backend, FloatArray } from './backend.js';
export { jsBackend } from './backend-js.js';
export { getBackend, setBackend, nativeAvailable, nativeUnavailableReason, bf16Unavailable } from './registry.js';
export {
  Tensor, noGrad, releaseTape, setDefaultDType, getDefaultDType, isGradEnabled, poolStats, clearPool,
  type DType, type PoolStats,
} from './tensor.js';
export {
  linear, matmul, add, sub, mul, div, minimum, maximum, addScalar, mulScalar, neg, exp, log, sigmoid, logSigmoid,
  clamp, where, sum, mean, sumLastDim, embedding, gatherRows, setMatmulPrecision, getMatmulPrecision, MATMUL_PRECISIONS,
  type MatmulPrecision,
} from './ops.js';
export {
  rmsnorm, residualRmsnorm, layernorm, rope, ropeTables, ropeInvFreq, ropeTablesFrom, attention, swiglu, gelu, softmax,
  crossEntropy, tokenLogprobs, entropy,
} from './nn.js';
