// Preference collection: sampling K answers (sample.ts), items (items.ts), rankings and their pairs (ranking.ts), the
// store (store.ts, lock.ts), the formats people bring and the training view (formats.ts), the simulated labeller
// (labeller.ts, rhyme.ts) and the judge interface of the evaluation (judge.ts).
export * from './items.js';
export * from './ranking.js';
export * from './store.js';
export * from './formats.js';
export * from './sample.js';
export * from './judge.js';
export * from './labeller.js';
export * from './rhyme.js';
