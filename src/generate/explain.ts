// The --explain view: for each generated token, the top candidates of the distribution the draw was made from (after
// the whole sampler chain, temperature included) with their probabilities as bars, and a marker on the one drawn. The
// draw the model makes at every step, made visible. In a colour terminal the probability is coloured (green likely,
// yellow plausible, red a long shot).
// Boundary: formatting only; the candidates come from Sampler.sample (sampler.ts) via the engine's TokenStep.
import type { TokenStep } from './engine.js';

export interface ExplainFormat {
  color?: boolean; // ANSI colours
  barWidth?: number; // characters for probability 1
  index?: number; // the step number shown in the header
  greedy?: boolean; // temperature 0: the drawn token is the argmax
}

// A token's text made visible: quoted, with escapes for whitespace and control characters (JSON's rules).
export function showToken(text: string): string {
  return /^<[0-9a-f]{2}( [0-9a-f]{2})*>$/.test(text) ? text : JSON.stringify(text);
}

export function renderExplain(step: TokenStep, tokenText: (id: number) => string, f: ExplainFormat = {}): string {
  const cands = step.candidates ?? [];
  // Tokens the chain cut (probability exactly 0) are not candidates: list only what the draw could have picked.
  const rows = cands.filter((c) => c.prob > 0 || c.id === step.id).map((c) => ({ id: c.id, prob: c.prob }));
  const drawnShown = rows.some((r) => r.id === step.id);
  const label = (id: number) => showToken(tokenText(id));
  const width = Math.max(8, ...rows.map((r) => displayWidth(label(r.id))), displayWidth(label(step.id)));
  const barWidth = f.barWidth ?? 24;
  const pDrawn = step.prob ?? rows.find((r) => r.id === step.id)?.prob ?? NaN;
  const head = `${f.index !== undefined ? `#${f.index} ` : ''}drew ${label(step.id)} p=${fmtProb(pDrawn)}` +
    (f.greedy ? ' (greedy: the most probable)' : '') + (step.logprob !== undefined ? `  logprob(model)=${step.logprob.toFixed(3)}` : '');
  const line = (id: number, prob: number) => {
    const mark = id === step.id ? '>' : ' ';
    const text = label(id);
    const bar = '#'.repeat(Math.round(prob * barWidth)).padEnd(barWidth, '.');
    const body = `${fmtProb(prob)} ${bar}`;
    return `  ${mark} ${text}${' '.repeat(width - displayWidth(text))} ${f.color ? colorFor(prob) + body + RESET : body}`;
  };
  const out = [head, ...rows.map((r) => line(r.id, r.prob))];
  if (!drawnShown && Number.isFinite(pDrawn)) out.push('    ...', line(step.id, pDrawn));
  return out.join('\n');
}

function fmtProb(p: number): string {
  return Number.isFinite(p) ? p.toFixed(3) : '  ?  ';
}

const RESET = '\x1b[0m';
function colorFor(p: number): string {
  if (p >= 0.5) return '\x1b[32m'; // green
  if (p >= 0.1) return '\x1b[33m'; // yellow
  return '\x1b[31m'; // red
}

// A token's text for the table: its bytes as UTF-8, or as hex when they are part of a character split over tokens
// (so the view shows <e6 98> instead of U+FFFD).
export function tokenTextOf(tokenizer: { decode(ids: number[]): string; tokenBytes?(id: number): Uint8Array }): (id: number) => string {
  const strict = new TextDecoder('utf-8', { fatal: true });
  return (id) => {
    if (!tokenizer.tokenBytes) return tokenizer.decode([id]);
    const b = tokenizer.tokenBytes(id);
    try {
      return strict.decode(b);
    } catch {
      return `<${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ')}>`;
    }
  };
}

// Terminal columns of a string: East Asian wide characters and most emoji take two (a short approximation of
// Unicode's East_Asian_Width, UAX #11).
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const wide = (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) ||
      (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
      (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) || (c >= 0x20000 && c <= 0x3fffd);
    w += wide ? 2 : 1;
  }
  return w;
}
