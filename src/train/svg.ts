// The loss curve as a standalone SVG picture (train and validation loss against step), written beside the checkpoint.
// No dependencies: a few polylines, axes and tick labels.
//
// API: lossCurveSvg({ train: [step, loss][], val: [step, loss][], title? }) -> string

export interface Curves { train: [number, number][]; val: [number, number][]; title?: string }

function niceTicks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) out.push(+t.toPrecision(12));
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lossCurveSvg(c: Curves): string {
  const W = 720, H = 420, L = 60, R = 20, Tm = 36, Bm = 44;
  const pts = [...c.train, ...c.val].filter(([, y]) => Number.isFinite(y));
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(0, ...xs), x1 = Math.max(1, ...xs);
  let y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-6) { y0 -= 0.5; y1 += 0.5; }
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => Tm + (1 - (y - y0) / (y1 - y0)) * (H - Tm - Bm);
  const line = (p: [number, number][]) =>
    p.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(c.title ?? 'loss')}</text>`,
    `<line x1="${L}" y1="${H - Bm}" x2="${W - R}" y2="${H - Bm}" stroke="black"/>`,
    `<line x1="${L}" y1="${Tm}" x2="${L}" y2="${H - Bm}" stroke="black"/>`,
  ];
  for (const t of niceTicks(x0, x1, 6)) {
    parts.push(`<line x1="${px(t)}" y1="${H - Bm}" x2="${px(t)}" y2="${H - Bm + 4}" stroke="black"/>`,
      `<text x="${px(t)}" y="${H - Bm + 16}" text-anchor="middle">${t}</text>`);
  }
  for (const t of niceTicks(y0, y1, 6)) {
    parts.push(`<line x1="${L - 4}" y1="${py(t)}" x2="${W - R}" y2="${py(t)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
  }
  parts.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  if (c.train.length) parts.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line(c.train)}"/>`);
  if (c.val.length) {
    parts.push(`<polyline fill="none" stroke="#d62728" stroke-width="2" points="${line(c.val)}"/>`);
    for (const [x, y] of c.val) if (Number.isFinite(y)) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="#d62728"/>`);
  }
  parts.push(`<text x="${W - R - 120}" y="${Tm + 14}" fill="#1f77b4">train loss</text>`,
    `<text x="${W - R - 120}" y="${Tm + 30}" fill="#d62728">val loss</text>`, '</svg>', '');
  return parts.join('\n');
}
