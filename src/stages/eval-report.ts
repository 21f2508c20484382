// The evaluation as a page a person can read: the table, then the answers of every model to the same prompts side by
// side, with the simulated labeller's score of each. Written beside eval.json as eval.html; plain HTML and CSS, no script.
import type { EvalReport } from './eval.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function evalHtml(report: EvalReport, table: string, answers = 8): string {
  const byPrompt = new Map<number, { prompt: string; cells: Map<string, { answer: string; score?: number }> }>();
  for (const m of report.models) {
    for (const s of m.samples) {
      if (!byPrompt.has(s.promptIndex)) byPrompt.set(s.promptIndex, { prompt: s.prompt, cells: new Map() });
      byPrompt.get(s.promptIndex)!.cells.set(m.name, { answer: s.answer, score: s.labeller?.score });
    }
  }
  const rows = [...byPrompt.entries()].sort((a, b) => a[0] - b[0]).slice(0, answers).map(([, p]) =>
    `<tr><th>${esc(p.prompt)}</th>${report.models.map((m) => {
      const c = p.cells.get(m.name);
      if (!c) return '<td></td>';
      return `<td><pre>${esc(c.answer)}</pre>${c.score === undefined ? '' : `<span class="score">labeller ${c.score.toFixed(2)}</span>`}</td>`;
    }).join('')}</tr>`).join('\n');
  return `<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>chatwright evaluation</title>
<style>
body { font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 2em; color: #222; }
pre { white-space: pre-wrap; font-family: inherit; margin: 0; }
pre.table { font-family: ui-monospace, monospace; background: #f6f6f6; padding: 1em; white-space: pre; overflow-x: auto; }
table.answers { border-collapse: collapse; }
table.answers th, table.answers td { border: 1px solid #ddd; padding: 0.5em; vertical-align: top; text-align: left; }
.score { color: #666; font-size: 0.8em; }
</style></head><body>
<h1>Evaluation on held-out prompts</h1>
<p>${report.decoding && report.decoding.temperature > 0 ? `Answers sampled at temperature ${report.decoding.temperature} (seed ${report.decoding.seed} + prompt)` : 'Greedy answers'}; win rates are against the baseline model's answer to the same prompt (ties count half). The simulated
labeller is a rule-based judge (form, rhyme, repeated characters, the title's characters), not a person.</p>
<pre class="table">${esc(table)}</pre>
<h2>Answers side by side</h2>
<table class="answers"><tr><th>prompt</th>${report.models.map((m) => `<th>${esc(m.name)}</th>`).join('')}</tr>
${rows}
</table></body></html>
`;
}
