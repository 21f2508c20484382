// Learning-rate schedules: linear warmup, then cosine or linear decay to lrMin (or constant).
// Cosine decay after Loshchilov & Hutter, SGDR (2017); warmup + cosine as in nanoGPT train.py `get_lr`.
//
// API: lrAt(step, schedule) with step counting optimizer steps from 0.

export interface Schedule {
  lrMax: number;
  lrMin: number;
  warmup: number;                           // steps of linear warmup from lrMax / warmup to lrMax
  total: number;                            // total optimizer steps; decay ends here
  decay: 'cosine' | 'linear' | 'constant';
}

export function lrAt(step: number, s: Schedule): number {
  if (step < s.warmup) return (s.lrMax * (step + 1)) / s.warmup;
  if (s.decay === 'constant') return s.lrMax;
  const span = Math.max(1, s.total - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  const coeff = s.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return s.lrMin + coeff * (s.lrMax - s.lrMin);
}
