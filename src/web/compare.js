// Side by side: one prompt, the answers of several models (base / SFT / DPO / PPO ...) streamed at once into columns,
// all drawn with the same seed and settings, so the differences are the models'.
import { stream } from './api.js';

const $ = (id) => document.getElementById(id);
let abort = null;

export function initCompare(models) {
  const box = $('cmp-models');
  box.replaceChildren();
  for (const m of models) {
    const label = document.createElement('label');
    label.className = 'check';
    const cb = Object.assign(document.createElement('input'), { type: 'checkbox', checked: true, value: m.id });
    label.append(cb, ` ${m.id}`);
    box.append(label);
  }
  $('cmp-form').onsubmit = (e) => {
    e.preventDefault();
    void run();
  };
  $('cmp-stop').onclick = () => abort?.abort();
}

async function run() {
  const prompt = $('cmp-prompt').value.trim();
  const chosen = [...document.querySelectorAll('#cmp-models input:checked')].map((x) => x.value);
  if (!prompt || chosen.length === 0 || abort) return;
  const num = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
  const body = { messages: [{ role: 'user', content: prompt }], seed: num('cmp-seed') ?? 1, temperature: num('cmp-temperature'), max_tokens: num('cmp-max-tokens') };
  abort = new AbortController();
  $('cmp-stop').hidden = false;
  $('cmp-run').disabled = true;
  const columns = $('cmp-columns');
  columns.replaceChildren();
  await Promise.all(chosen.map((model) => column(columns, model, body, abort.signal)));
  abort = null;
  $('cmp-stop').hidden = true;
  $('cmp-run').disabled = false;
}

async function column(parent, model, body, signal) {
  const col = document.createElement('div');
  col.className = 'column';
  col.dataset.model = model;
  const h = Object.assign(document.createElement('h3'), { textContent: model });
  const text = Object.assign(document.createElement('div'), { className: 'answer' });
  const foot = Object.assign(document.createElement('p'), { className: 'muted' });
  col.append(h, text, foot);
  parent.append(col);
  const t0 = performance.now();
  let tFirst = 0, tokens = 0, finish = '';
  try {
    for await (const chunk of stream('/v1/chat/completions', { ...body, model, stream_options: { include_usage: true } }, signal)) {
      const ch = chunk.choices[0];
      if (ch?.delta?.content) {
        if (!tFirst) tFirst = performance.now();
        text.append(ch.delta.content);
      }
      if (ch?.finish_reason) finish = ch.finish_reason;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  } catch (e) {
    finish = e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`;
    if (e.name !== 'AbortError') foot.classList.add('error');
  }
  const secs = (performance.now() - (tFirst || t0)) / 1000;
  foot.textContent = [finish && `finish: ${finish}`, tokens && `${tokens} tokens`, tokens > 1 && `${((tokens - 1) / secs).toFixed(1)} tokens/s`,
    `seed ${body.seed}`].filter(Boolean).join(' · ');
  col.classList.add('done');
}
