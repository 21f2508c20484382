// The ranking view: the human feedback of the preferences stage. The server hands this person one prompt with its K
// sampled answers (leased to them, so two people ranking at once see different items); they put the answers in order,
// best first, and the ranking goes to the server's preference store, the same store `chatwright rank` writes
// (src/serve/feedback.ts for the API, src/feedback/store.ts for the records).
//
// Ordering, three ways that edit one order (a list of groups of answer indices; answers in one group are tied):
// - drag an answer card into "your order" (dropped between the cards where it goes), or back out to unplace it;
// - keys: 1-9 put that answer next; = first ties the next one with the last; Backspace takes back the last one;
// - type the order as in the terminal: "3 1=2 4" (1-based, best first, = between tied answers).
// Then Enter saves; b: all bad; s: skip; u: undo the last record (its item comes back with its order).
// The person's name is asked once, checked by the server, and kept in localStorage; it goes with every call.
import { ApiError, getJson, postJson } from './api.js';

const $ = (id) => document.getElementById(id);
const NAME_KEY = 'chatwright-annotator';

let annotator = localStorage.getItem(NAME_KEY) || '';
let item = null;     // the item on screen: {id, prompt, responses, model?, finish?}
let groups = [];     // the order so far, best first: [[2], [0, 1]] is "3 1=2"
let tieNext = false; // "=" was pressed: the next answer picked joins the last group
let busy = false;
let ready = false;

const K = () => item?.responses.length ?? 0;
const placed = () => new Set(groups.flat());
const complete = () => item !== null && placed().size === K();

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function status(text, error = false) {
  $('rank-status').textContent = text;
  $('rank-status').classList.toggle('error', error);
}

// ---- the order as typed: "3 1=2 4" <-> groups (the terminal's syntax, src/feedback/ranking.ts parseOrder)

export function formatTyped(gs) {
  return gs.map((g) => g.map((i) => i + 1).join('=')).join(' ');
}

// What has been typed so far: the groups of its valid part, and the first problem (null when none). A missing answer
// is not a problem while typing; saving needs all of them.
export function parseTyped(text, k) {
  const out = [];
  const seen = new Set();
  const parts = text.trim().replace(/\s*=\s*/g, '=').split(/[>,\s]+/).filter((s) => s.length > 0);
  for (const part of parts) {
    const g = [];
    for (const x of part.split('=')) {
      if (x === '') continue; // "3=" while typing the tie
      if (!/^\d+$/.test(x)) return { groups: out, error: `"${x}" is not an answer number; type 1 to ${k}, best first` };
      const n = Number(x);
      if (n < 1 || n > k) return { groups: out, error: `there is no answer ${n}; the answers are numbered 1 to ${k}` };
      if (seen.has(n - 1)) return { groups: out, error: `answer ${n} appears twice` };
      seen.add(n - 1);
      g.push(n - 1);
    }
    if (g.length) out.push(g);
  }
  return { groups: out, error: null };
}

// ---- editing the order

function pick(i) {
  if (!item || i >= K()) return;
  if (placed().has(i)) {
    status(`answer ${i + 1} is placed already; Backspace takes back the last one, or drag it`);
    return;
  }
  if (tieNext && groups.length) groups[groups.length - 1].push(i);
  else groups.push([i]);
  tieNext = false;
  changed();
}

function unplace(i) {
  groups = groups.map((g) => g.filter((x) => x !== i)).filter((g) => g.length);
  changed();
}

// Put answer i, alone, before group `at` (groups.length: at the end), counted before i is taken out.
function moveTo(i, at) {
  const emptied = groups.slice(0, at).filter((g) => g.length === 1 && g[0] === i).length;
  const rest = groups.map((g) => g.filter((x) => x !== i)).filter((g) => g.length);
  rest.splice(Math.max(0, at - emptied), 0, [i]);
  groups = rest;
  changed();
}

// The "=" toggle of the answer at flat position p (> 0): tie it with the one above, or untie it.
function toggleTie(p) {
  const flat = groups.flatMap((g, gi) => g.map((i, j) => ({ gi, j })));
  const { gi, j } = flat[p];
  if (j > 0) groups.splice(gi, 1, groups[gi].slice(0, j), groups[gi].slice(j));
  else groups.splice(gi - 1, 2, [...groups[gi - 1], ...groups[gi]]);
  changed();
}

function changed(fromTyping = false) {
  if (!fromTyping) $('rank-order').value = formatTyped(groups);
  render();
}

// ---- drawing

function card(i, rankLabel) {
  const li = el('li', 'card');
  li.dataset.answer = String(i);
  li.draggable = true;
  li.addEventListener('dragstart', (e) => {
    e.dataTransfer.setData('text/plain', String(i));
    e.dataTransfer.effectAllowed = 'move';
    li.classList.add('dragging');
  });
  li.addEventListener('dragend', () => li.classList.remove('dragging'));
  const head = el('div', 'card-head');
  head.append(el('span', 'num', String(i + 1)));
  if (rankLabel) head.append(el('span', 'rank', rankLabel));
  const text = item.responses[i];
  const body = el('div', 'answer', text === '' ? '(empty)' : text);
  li.append(head, body);
  if (item.finish?.[i] === 'length') li.append(el('div', 'muted', '(cut at the token limit)'));
  return li;
}

function render() {
  const box = $('rank-prompt');
  box.replaceChildren();
  if (item.model) box.append(el('p', 'muted', `answers sampled from ${item.model}`));
  for (const m of item.prompt) {
    const p = el('div', `turn ${m.role}`);
    p.append(el('span', 'who', m.role), el('div', 'body', m.content));
    box.append(p);
  }
  const on = placed();
  const order = $('rank-ordered');
  order.replaceChildren();
  let p = 0;
  groups.forEach((g, gi) => {
    g.forEach((i, j) => {
      const c = card(i, `rank ${gi + 1}${g.length > 1 ? ', tied' : ''}`);
      c.dataset.group = String(gi);
      if (p > 0) {
        const tie = el('button', 'tie', '=');
        tie.type = 'button';
        tie.title = j > 0 ? 'tied with the answer above (click to untie)' : 'tie with the answer above';
        tie.setAttribute('aria-pressed', String(j > 0));
        const at = p;
        tie.addEventListener('click', () => toggleTie(at));
        c.querySelector('.card-head').append(tie);
      }
      order.append(c);
      p++;
    });
  });
  if (groups.length === 0) order.append(el('li', 'placeholder', 'Drag the answers here, best first, or press their numbers.'));
  const left = $('rank-unplaced');
  left.replaceChildren(...item.responses.map((_, i) => i).filter((i) => !on.has(i)).map((i) => card(i)));
  if (on.size === K()) left.append(el('li', 'placeholder', 'All placed. Enter saves.'));
  $('rank-save').disabled = busy || !complete();
  for (const id of ['rank-bad', 'rank-skip', 'rank-undo', 'rank-clear']) $(id).disabled = busy;
}

function showCounts(c) {
  if (!c) return;
  const others = Math.max(0, c.leased - (item ? 1 : 0));
  $('rank-counts').textContent = `you: ${c.mine ?? 0} · all: ${c.done} of ${c.items} done, ${c.pending} to go` +
    (others ? ` · ${others} on other screens` : '');
}

// ---- the calls

async function call(f) {
  if (busy) return null;
  busy = true;
  if (item) render();
  try {
    return await f();
  } catch (e) {
    status(e.message, true);
    return e;
  } finally {
    busy = false;
    if (item) render();
  }
}

async function loadNext(prefill = null) {
  const r = await call(() => getJson(`/v1/feedback/next?annotator=${encodeURIComponent(annotator)}`));
  if (!r || r instanceof Error) {
    if (r?.code === 'no_feedback_store') {
      $('rank-main').hidden = true;
      $('rank-none').hidden = false;
    }
    return;
  }
  showCounts(r.counts);
  const same = item && r.item && item.id === r.item.id;
  item = r.item;
  $('rank-item').hidden = !item;
  $('rank-empty').hidden = Boolean(item);
  if (!item) return;
  if (prefill && prefill.item === item.id) groups = prefill.groups;
  else if (!same) groups = [];
  tieNext = false;
  changed();
}

async function save(sub) {
  if (!item) return;
  const r = await call(() => postJson('/v1/feedback/rankings', { annotator, item: item.id, ...sub }));
  if (!r) return;
  if (r instanceof Error) {
    if (r instanceof ApiError && r.status === 409) await loadNext(); // someone else ranked it meanwhile
    return;
  }
  status(`saved: ${describe(r.record)}`);
  showCounts(r.counts);
  groups = [];
  await loadNext();
}

function saveOrder() {
  const typed = parseTyped($('rank-order').value, K());
  if (typed.error) return status(`not saved: ${typed.error}`, true);
  groups = typed.groups;
  if (!complete()) {
    const missing = item.responses.map((_, i) => i).filter((i) => !placed().has(i)).map((i) => i + 1);
    changed();
    return status(`not saved: answer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not placed yet; rank all ${K()} (ties are allowed)`, true);
  }
  void save({ ranking: groups.map((g) => (g.length === 1 ? g[0] : g)) });
}

async function undo() {
  const r = await call(() => postJson('/v1/feedback/undo', { annotator }));
  if (!r || r instanceof Error) return;
  showCounts(r.counts);
  if (!r.undone) return status('nothing of yours to undo');
  status(`undone: ${describe(r.undone)}; here it is again`);
  const gs = r.undone.verdict === 'ranked' ? r.undone.ranking.map((g) => (Array.isArray(g) ? g : [g])) : [];
  await loadNext({ item: r.undone.item, groups: gs });
}

function describe(rec) {
  if (rec.verdict !== 'ranked') return rec.verdict;
  return rec.ranking.map((g) => (Array.isArray(g) ? g.map((i) => i + 1).join(' = ') : String(g + 1))).join(' > ');
}

// ---- the name

function askName() {
  $('rank-main').hidden = true;
  $('rank-name-form').hidden = false;
  $('rank-name').value = annotator;
  $('rank-name').focus();
}

async function useName(name) {
  $('rank-name-error').textContent = '';
  const prev = annotator;
  annotator = name;
  try {
    await getJson(`/v1/feedback/counts?annotator=${encodeURIComponent(name)}`);
  } catch (e) {
    annotator = prev;
    if (e.code === 'no_feedback_store') {
      $('rank-name-form').hidden = true;
      $('rank-none').hidden = false;
    } else $('rank-name-error').textContent = e.message;
    return;
  }
  localStorage.setItem(NAME_KEY, name);
  $('rank-name-form').hidden = true;
  $('rank-main').hidden = false;
  $('rank-who-name').textContent = name;
  item = null;
  groups = [];
  await loadNext();
}

// ---- wiring

function onKey(e) {
  if ($('view-rank').hidden || $('rank-main').hidden) return;
  const tag = e.target?.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
  if (((e.ctrlKey || e.metaKey) && e.key === 'z') || (e.key === 'u' && !e.ctrlKey && !e.metaKey && !e.altKey)) {
    e.preventDefault();
    return void undo(); // also when nothing is left to rank
  }
  if (e.ctrlKey || e.metaKey || e.altKey || !item) return;
  if (/^[1-9]$/.test(e.key)) pick(Number(e.key) - 1);
  else if (e.key === '=') {
    if (groups.length) {
      tieNext = true;
      status('= : the next answer you pick ties with the last one');
    }
  } else if (e.key === 'Backspace') {
    const last = groups[groups.length - 1];
    if (last) unplace(last[last.length - 1]);
  } else if (e.key === 'Escape') {
    groups = [];
    changed();
  } else if (e.key === 'Enter' && tag !== 'BUTTON') {
    if (complete()) saveOrder();
    else status(`place all ${K()} answers first (${placed().size} placed)`, true);
  } else if (e.key === 'b') void save({ verdict: 'all-bad' });
  else if (e.key === 's') void save({ verdict: 'skipped' });
  else return;
  e.preventDefault();
}

// Where in "your order" a drop at height y goes: before the first group whose middle is below y.
function dropIndex(y) {
  const cards = [...$('rank-ordered').querySelectorAll('.card:not(.dragging)')];
  for (const c of cards) {
    const r = c.getBoundingClientRect();
    if (y < r.top + r.height / 2) return Number(c.dataset.group);
  }
  return groups.length;
}

function wireDrops() {
  const ordered = $('rank-ordered'), unplaced = $('rank-unplaced');
  for (const zone of [ordered, unplaced]) {
    zone.addEventListener('dragover', (e) => {
      e.preventDefault();
      e.dataTransfer.dropEffect = 'move';
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  }
  ordered.addEventListener('drop', (e) => {
    e.preventDefault();
    ordered.classList.remove('over');
    const i = Number(e.dataTransfer.getData('text/plain'));
    if (Number.isInteger(i) && i >= 0 && i < K()) moveTo(i, dropIndex(e.clientY));
  });
  unplaced.addEventListener('drop', (e) => {
    e.preventDefault();
    unplaced.classList.remove('over');
    const i = Number(e.dataTransfer.getData('text/plain'));
    if (Number.isInteger(i) && placed().has(i)) unplace(i);
  });
}

function init() {
  $('rank-name-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('rank-name').value.trim();
    if (name) void useName(name);
  });
  $('rank-rename').addEventListener('click', askName);
  $('rank-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveOrder();
  });
  // Enter in the order field saves, or says what is missing (the form's own Enter does nothing while Save is disabled)
  $('rank-order').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    saveOrder();
  });
  $('rank-order').addEventListener('input', () => {
    if (!item) return;
    const typed = parseTyped($('rank-order').value, K());
    groups = typed.groups;
    tieNext = false;
    changed(true);
    status(typed.error ?? (complete() ? 'Enter saves' : ''), Boolean(typed.error));
  });
  $('rank-bad').addEventListener('click', () => void save({ verdict: 'all-bad' }));
  $('rank-skip').addEventListener('click', () => void save({ verdict: 'skipped' }));
  $('rank-undo').addEventListener('click', () => void undo());
  $('rank-clear').addEventListener('click', () => {
    groups = [];
    changed();
  });
  $('rank-again').addEventListener('click', () => void loadNext());
  document.addEventListener('keydown', onKey);
  wireDrops();
  ready = true;
}

export function showRank() {
  if (!ready) init();
  $('rank-none').hidden = true;
  if (!annotator) return askName();
  $('rank-name-form').hidden = true;
  $('rank-main').hidden = false;
  $('rank-who-name').textContent = annotator;
  void loadNext();
}
