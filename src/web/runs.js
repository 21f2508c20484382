// The runs view: pick a run of the server's runs folder; each stage's loss curve from its metrics.jsonl (training loss
// as a line, validation loss as dots), refreshed every 2 s while the view is open so a run in training grows live; and
// the eval tables (eval.json). The server lists the runs itself; the page only ever names one by its id.
import { getJson } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const POLL_MS = 2000;

let current = null; // { id, stages: Map(name -> { records, chart }) }
let timer = null;

export async function showRuns() {
  const select = $('runs-select');
  let runs;
  try {
    runs = (await getJson('/api/runs')).runs;
  } catch (e) {
    $('runs-status').textContent = e.message;
    return;
  }
  const keep = select.value;
  select.replaceChildren(...runs.map((r) => Object.assign(document.createElement('option'), { value: r.id, textContent: r.id })));
  if (runs.length === 0) {
    $('runs-status').textContent = 'no runs in the runs folder yet';
    return;
  }
  select.value = runs.some((r) => r.id === keep) ? keep : runs[0].id;
  select.onchange = () => void open(select.value);
  await open(select.value);
}

export function hideRuns() {
  clearTimeout(timer);
  timer = null;
}

async function open(id) {
  hideRuns();
  current = { id, stages: new Map() };
  $('runs-stages').replaceChildren();
  $('runs-eval').replaceChildren();
  await refresh(true);
}

// New stages and new records since the last poll; eval tables on the first call.
async function refresh(first = false) {
  const run = current;
  const info = (await getJson('/api/runs')).runs.find((r) => r.id === run.id);
  if (!info || run !== current) return;
  for (const s of info.stages.filter((x) => x.metrics)) {
    let st = run.stages.get(s.name);
    if (!st) {
      st = { records: [], chart: chartBox(s.name) };
      run.stages.set(s.name, st);
      $('runs-stages').append(st.chart.box);
    }
    const r = await getJson(`/api/runs/${encodeURIComponent(run.id)}/metrics?stage=${encodeURIComponent(s.name)}&since=${st.records.length}`);
    if (r.records.length > 0 || first) {
      st.records.push(...r.records);
      drawChart(st.chart, s.name, st.records);
    }
  }
  if (first) await evalTables(info);
  $('runs-status').textContent = `${run.stages.size} stages with metrics · updated ${new Date().toLocaleTimeString()}`;
  if (run === current) timer = setTimeout(() => void refresh().catch((e) => ($('runs-status').textContent = e.message)), POLL_MS);
}

function chartBox(name) {
  const box = document.createElement('figure');
  box.className = 'chart';
  box.dataset.stage = name;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 560 240');
  const caption = document.createElement('figcaption');
  box.append(caption, svg);
  return { box, svg, caption };
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawChart(chart, name, records) {
  const train = records.filter((r) => typeof r.loss === 'number');
  const val = records.filter((r) => typeof r.valLoss === 'number');
  const last = train[train.length - 1];
  chart.caption.textContent = `${name}: ${train.length} steps` + (last ? ` · step ${last.step} loss ${last.loss.toFixed(4)}` : '') +
    (val.length ? ` · val ${val[val.length - 1].valLoss.toFixed(4)}` : '') + (last?.tokPerSec ? ` · ${last.tokPerSec} tokens/s` : '');
  const svg = chart.svg;
  svg.replaceChildren();
  const ys = [...train.map((r) => r.loss), ...val.map((r) => r.valLoss)];
  if (ys.length === 0) {
    svg.append(svgEl('text', { x: 280, y: 120, 'text-anchor': 'middle', class: 'axis' }, 'no records yet'));
    return;
  }
  const L = 50, R = 545, T = 12, B = 210;
  const xMax = Math.max(1, ...records.map((r) => r.step));
  let yMin = Math.min(...ys), yMax = Math.max(...ys);
  if (yMax - yMin < 1e-9) { yMin -= 0.5; yMax += 0.5; }
  const x = (s) => L + ((R - L) * s) / xMax;
  const y = (v) => B - ((B - T) * (v - yMin)) / (yMax - yMin);
  svg.append(svgEl('line', { x1: L, y1: B, x2: R, y2: B, class: 'axis-line' }), svgEl('line', { x1: L, y1: T, x2: L, y2: B, class: 'axis-line' }));
  svg.append(svgEl('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'axis' }, yMax.toFixed(2)));
  svg.append(svgEl('text', { x: L - 6, y: B, 'text-anchor': 'end', class: 'axis' }, yMin.toFixed(2)));
  svg.append(svgEl('text', { x: R, y: B + 18, 'text-anchor': 'end', class: 'axis' }, `step ${xMax}`));
  svg.append(svgEl('text', { x: L, y: B + 18, class: 'axis' }, '0'));
  if (train.length > 0) svg.append(svgEl('polyline', { points: train.map((r) => `${x(r.step).toFixed(1)},${y(r.loss).toFixed(1)}`).join(' '), class: 'loss' }));
  for (const r of val) svg.append(svgEl('circle', { cx: x(r.step), cy: y(r.valLoss), r: 3.5, class: 'val' }));
  svg.append(svgEl('text', { x: R, y: T + 4, 'text-anchor': 'end', class: 'legend' }, 'line: training loss · dots: validation loss'));
}

const LABELS = { heldoutLoss: 'held-out SFT loss', poemForm: 'poems in the requested form', author: 'correct author', glossF1: 'definition token F1' };

async function evalTables(info) {
  const sources = [...(info.eval ? [null] : []), ...info.stages.filter((s) => s.eval).map((s) => s.name)];
  for (const stage of sources) {
    const q = stage ? `?stage=${encodeURIComponent(stage)}` : '';
    const report = await getJson(`/api/runs/${encodeURIComponent(info.id)}/eval${q}`);
    if (!Array.isArray(report?.models) || report.models.length === 0) continue;
    const wrap = document.createElement('div');
    wrap.className = 'eval';
    wrap.append(Object.assign(document.createElement('h3'), { textContent: `eval${stage ? ` (${stage}/eval.json)` : ' (eval.json)'}` }));
    const table = document.createElement('table');
    const head = document.createElement('tr');
    head.append(...['metric', ...report.models.map((m) => m.name)].map((t) => Object.assign(document.createElement('th'), { textContent: t })));
    table.append(head);
    const keys = Object.keys(report.models[0].metrics ?? {}).filter((k) => k !== 'counts');
    for (const k of keys) {
      const tr = document.createElement('tr');
      const n = report.models[0].metrics.counts?.[k === 'heldoutLoss' ? 'heldout' : k === 'glossF1' ? 'gloss' : k];
      tr.append(Object.assign(document.createElement('td'), { textContent: `${LABELS[k] ?? k}${n ? ` (${n})` : ''}` }));
      for (const m of report.models) tr.append(Object.assign(document.createElement('td'), { className: 'num', textContent: fmt(k, m.metrics?.[k]) }));
      table.append(tr);
    }
    wrap.append(table);
    $('runs-eval').append(wrap);
  }
}

function fmt(k, v) {
  if (typeof v !== 'number') return '-';
  return k === 'poemForm' || k === 'author' ? `${(100 * v).toFixed(1)}%` : v.toFixed(3);
}
