// The page's entry: the views (chat with the lottery, side by side, runs) switched by the URL's hash, the model list,
// and the API key bar shown when the server answers 401.
// A fourth view, Ranking (K answers ordered by a person, written to the preference store), joins here once
// src/feedback/ exists: a nav entry in index.html, a section, and its init beside the others.
import { models, setKey, whenKeyNeeded } from './api.js';
import { initChat } from './chat.js';
import { initCompare } from './compare.js';
import { hideRuns, showRuns } from './runs.js';

const $ = (id) => document.getElementById(id);
const VIEWS = ['chat', 'compare', 'runs'];

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
}

async function loadModels() {
  try {
    const list = await models();
    $('chat-model').replaceChildren(...list.map((m) => Object.assign(document.createElement('option'), { value: m.id, textContent: `${m.id} (context ${m.max_model_len})` })));
    initCompare(list);
    banner('');
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
});

initChat();
window.addEventListener('hashchange', () => show(location.hash.slice(1)));
show(location.hash.slice(1));
void loadModels();
