// The chat view: a multi-turn conversation streamed from /v1/chat/completions, with the sampling controls, a system
// prompt, a model picker and a stop button (it closes the stream, which stops the generation on the server). With the
// lottery on, each answer is drawn token by token as clickable pieces; a click shows that token's lottery.
import { stream } from './api.js';
import { renderLottery } from './lottery.js';

const $ = (id) => document.getElementById(id);
const EXPLAIN_TOP = 10;

let history = []; // {role, content} of the turns so far (the system prompt is added per request)
let abort = null;

export function initChat() {
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void send();
  });
  $('chat-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      void send();
    }
  });
  $('chat-stop').addEventListener('click', () => abort?.abort());
  $('chat-new').addEventListener('click', () => {
    abort?.abort();
    history = [];
    $('chat-log').replaceChildren();
    $('chat-status').textContent = 'new conversation';
  });
}

function readSampling() {
  const num = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
  const s = {
    temperature: num('chat-temperature'), top_p: num('chat-top-p'), top_k: num('chat-top-k'), min_p: num('chat-min-p'),
    max_tokens: num('chat-max-tokens'), seed: num('chat-seed'),
  };
  for (const k of Object.keys(s)) if (s[k] === undefined) delete s[k];
  return s;
}

function bubble(role) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'you' : 'assistant';
  const body = document.createElement('div');
  body.className = 'body';
  div.append(who, body);
  $('chat-log').append(div);
  return { div, body };
}

async function send() {
  const text = $('chat-input').value.trim();
  if (!text || abort) return;
  $('chat-input').value = '';
  history.push({ role: 'user', content: text });
  const mine = bubble('user');
  mine.body.textContent = text;
  const system = $('chat-system').value.trim();
  const sampling = readSampling();
  const explain = $('chat-explain').checked;
  const body = {
    model: $('chat-model').value, messages: [...(system ? [{ role: 'system', content: system }] : []), ...history],
    ...sampling, explain: explain ? EXPLAIN_TOP : 0, stream_options: { include_usage: true },
  };
  const answer = new Answer(bubble('assistant').body, sampling);
  abort = new AbortController();
  $('chat-stop').hidden = false;
  $('chat-send').disabled = true;
  const t0 = performance.now();
  let finish = null, usage = null;
  try {
    const headers = (h) => (answer.sampling.seed = Number(h.get('x-chatwright-seed')));
    for await (const chunk of stream('/v1/chat/completions', body, abort.signal, headers)) {
      for (const ch of chunk.choices) {
        if (ch.explain) ch.explain.forEach((e) => answer.token(e));
        else if (ch.delta?.content) answer.text(ch.delta.content);
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
      $('chat-log').scrollTop = $('chat-log').scrollHeight;
    }
  } catch (e) {
    if (e.name === 'AbortError') finish = 'stopped';
    else answer.error(e.message);
  } finally {
    abort = null;
    $('chat-stop').hidden = true;
    $('chat-send').disabled = false;
  }
  answer.end();
  if (answer.content) history.push({ role: 'assistant', content: answer.content });
  else {
    history.pop(); // no answer: the turn is dropped, so the next one still alternates user / assistant
    mine.div.classList.add('dropped');
  }
  const secs = (performance.now() - t0) / 1000;
  $('chat-status').textContent = [finish && `finish: ${finish}`, usage && `${usage.completion_tokens} tokens in ${secs.toFixed(1)} s`,
    `seed ${answer.sampling.seed}`].filter(Boolean).join(' · ');
}

// An answer as it streams: with the lottery, one clickable piece per run of tokens that released text (a character
// split over two tokens shows once, and its piece holds both tokens' lotteries).
class Answer {
  constructor(box, sampling) {
    this.box = box;
    this.sampling = { temperature: 1, ...sampling };
    this.pending = [];
    this.content = '';
    this.count = 0;
  }

  token(e) {
    this.pending.push({ entry: e, index: this.count++ });
    if (e.text === '') return;
    const span = document.createElement('span');
    span.className = 'tok';
    span.textContent = e.text;
    const group = this.pending;
    this.pending = [];
    span.title = group.map((g) => `token ${g.index + 1}: ${(100 * (g.entry.prob ?? 0)).toFixed(1)}% of the draw`).join('\n');
    span.addEventListener('click', () => {
      document.querySelectorAll('.tok.selected').forEach((x) => x.classList.remove('selected'));
      span.classList.add('selected');
      const box = document.getElementById('lottery');
      box.replaceChildren();
      for (const g of group) {
        const part = document.createElement('div');
        renderLottery(part, g.entry, g.index, this.sampling);
        box.append(part);
      }
    });
    this.box.append(span);
    this.content += e.text;
  }

  text(t) {
    this.box.append(t);
    this.content += t;
  }

  error(message) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = message;
    this.box.append(p);
  }

  end() {
    if (this.box.childNodes.length === 0) this.box.append(Object.assign(document.createElement('span'), { className: 'muted', textContent: '(no answer)' }));
  }
}
