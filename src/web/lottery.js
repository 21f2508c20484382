// The lottery of one token: what the model offered (its most probable candidates, after the penalties, at temperature 1),
// what the sampler chain cut (top-k, top-p, min-p; or greedy), the odds left for the draw, and the one drawn. The same
// information as `chatwright generate --explain`, from the API's `explain` field (src/serve/openai.ts).

const CUT_TEXT = {
  'top-k': 'cut by top-k', 'top-p': 'cut by top-p', 'min-p': 'cut by min-p', greedy: 'not the argmax (greedy)',
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const pct = (x) => (x === null || x === undefined ? '?' : x >= 0.001 || x === 0 ? `${(100 * x).toFixed(1)}%` : x.toExponential(1));
const show = (t) => (/^<[0-9a-f]{2}( [0-9a-f]{2})*>$/.test(t) ? t : JSON.stringify(t));

// entry: one token's explain record; index: its place in the answer; sampling: the settings it was drawn with.
export function renderLottery(box, entry, index, sampling) {
  box.replaceChildren();
  box.append(el('h3', null, `token ${index + 1}: ${show(entry.token)}`));
  const drawn = el('p', 'drawn');
  drawn.append(`drew ${show(entry.token)} with ${pct(entry.prob)} of the draw`);
  if (entry.logprob !== null) drawn.append(el('span', 'muted', ` · the model gave it ${pct(Math.exp(entry.logprob))} (logprob ${entry.logprob.toFixed(3)})`));
  box.append(drawn);
  box.append(el('p', 'muted', chainText(sampling)));

  const table = el('table', 'cands');
  const head = el('tr');
  for (const h of ['', 'candidate', 'model → draw', 'model', 'draw', '']) head.append(el('th', null, h));
  table.append(head);
  for (const c of entry.candidates) {
    const tr = el('tr', c.cut ? 'cut' : 'kept');
    if (c.id === entry.id) tr.classList.add('chosen');
    tr.append(el('td', 'mark', c.id === entry.id ? '▶' : ''));
    tr.append(el('td', 'tok', show(c.token)));
    const bars = el('td', 'bars');
    const before = el('div', 'bar before');
    before.style.width = `${Math.max(0.5, 100 * c.p)}%`;
    const after = el('div', `bar after ${tone(c.prob)}`);
    after.style.width = `${100 * c.prob}%`;
    bars.append(before, after);
    tr.append(bars, el('td', 'num', pct(c.p)), el('td', 'num', c.cut ? '0' : pct(c.prob)), el('td', 'why', c.cut ? CUT_TEXT[c.cut] : ''));
    table.append(tr);
  }
  box.append(table);
  const cuts = entry.candidates.filter((c) => c.cut).length;
  box.append(el('p', 'muted legend',
    `grey: the model's probability (after penalties, temperature 1); colour: the odds in the draw after the chain` +
    `${sampling.temperature !== 1 ? ` and temperature ${sampling.temperature}` : ''}. ` +
    `${cuts} of the ${entry.candidates.length} shown were cut.`));
}

function chainText(s) {
  const parts = [`temperature ${s.temperature}`];
  if (s.top_k) parts.push(`top-k ${s.top_k}`);
  if (s.top_p !== undefined && s.top_p < 1) parts.push(`top-p ${s.top_p}`);
  if (s.min_p) parts.push(`min-p ${s.min_p}`);
  if (s.seed !== undefined) parts.push(`seed ${s.seed}`);
  return `sampler: ${parts.join(' · ')}${s.temperature === 0 ? ' (greedy: the most probable token is taken)' : ''}`;
}

function tone(p) {
  return p >= 0.5 ? 'high' : p >= 0.1 ? 'mid' : 'low';
}
