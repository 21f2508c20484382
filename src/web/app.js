// The page's entry: the views (chat with the lottery, side by side, ranking, runs) switched by the URL's hash, the model
// list, and the API key bar shown when the server answers 401. A server that serves no model (--store only) opens on
// the ranking view.
import { models, setKey, whenKeyNeeded } from './api.js';
import { initChat } from './chat.js';
import { initCompare } from './compare.js';
import { hideRuns, showRuns } from './runs.js';
import { showRank } from './rank.js';

const $ = (id) => document.getElementById(id);
const VIEWS = ['chat', 'compare', 'rank', 'runs'];

function banner(message) {
  $('banner').textContent = message;
  $('banner').hidden = !message;
}

function show(view) {
  if (!VIEWS.includes(view)) view = 'chat';
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === view));
  if (view === 'runs') void showRuns();
  else hideRuns();
  if (view === 'rank') showRank();
}

async function loadModels() {
  try {
    const list = await models();
    $('chat-model').replaceChildren(...list.map((m) => Object.assign(document.createElement('option'), { value: m.id, textContent: `${m.id} (context ${m.max_model_len})` })));
    initCompare(list);
    banner('');
    if (list.length === 0 && !location.hash) location.hash = '#rank';
  } catch (e) {
    banner(`could not list the models: ${e.message}`);
  }
}

whenKeyNeeded(() => {
  $('keybar').hidden = false;
  banner('this server needs an API key');
});
$('keybar').addEventListener('submit', (e) => {
  e.preventDefault();
  setKey($('key-input').value.trim());
  $('keybar').hidden = true;
  void loadModels();
  if (location.hash === '#rank') showRank();
});

initChat();
window.addEventListener('hashchange', () => show(location.hash.slice(1)));
show(location.hash.slice(1));
void loadModels();
