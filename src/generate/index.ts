// Generation: the sampler chain (sampler.ts), the KV-cache engine over token ids (engine.ts), stop strings (stop.ts),
// text and streaming (stream.ts), the --explain view (explain.ts), and the continuous batcher of concurrent requests
// (batcher.ts).
export * from './sampler.js';
export * from './engine.js';
export * from './stop.js';
export * from './stream.js';
export * from './explain.js';
export * from './batcher.js';
