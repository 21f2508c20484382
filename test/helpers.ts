// Shared test helpers (not a test file).

// A seeded uniform generator in [0, 1) for random test inputs: mulberry32 (Tommy Ettinger), small and fast; test inputs
// need reproducibility, not statistical quality.
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// n values uniform in [-1, 1) from a generator made by rng().
export function randArray(n: number, next: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 2 * next() - 1;
  return x;
}
