// The runs folder as the page sees it, read-only: which runs there are, the stages of each with their metrics.jsonl,
// and the eval tables. The folder is fixed when the server starts (--runs DIR); a request names a run and a stage by
// id, and an id is only ever looked up in a fresh listing of the folder: the path that is read is built from the names
// the listing returned, never from the request's text, so no request can reach a file outside the folder. Symbolic
// links are not followed (a link inside runs/ could point anywhere).
//
//   runs/<run>/<stage>/metrics.jsonl     a stage's training records (train/metrics.ts), live while it trains
//   runs/<run>/eval.json, runs/<run>/<stage>/eval.json    eval reports (stages/eval.ts)
import { existsSync, lstatSync, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { readMetrics, type MetricsRecord } from '../train/metrics.js';

export interface StageInfo { name: string; metrics: boolean; eval: boolean; updated: number | null }
export interface RunInfo { id: string; stages: StageInfo[]; eval: boolean; updated: number | null }

function dirs(path: string): Dirent[] {
  try {
    return readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.'));
  } catch {
    return [];
  }
}

function file(path: string): { exists: boolean; mtime: number | null } {
  try {
    const st = lstatSync(path);
    return st.isFile() ? { exists: true, mtime: st.mtimeMs } : { exists: false, mtime: null };
  } catch {
    return { exists: false, mtime: null };
  }
}

// Runs: the folders under root that hold a stage with metrics.jsonl or an eval.json; newest first.
export function listRuns(root: string): RunInfo[] {
  const runs: RunInfo[] = [];
  for (const r of dirs(root)) {
    const stages: StageInfo[] = [];
    for (const s of dirs(join(root, r.name))) {
      const m = file(join(root, r.name, s.name, 'metrics.jsonl'));
      const e = file(join(root, r.name, s.name, 'eval.json'));
      if (m.exists || e.exists) stages.push({ name: s.name, metrics: m.exists, eval: e.exists, updated: m.mtime ?? e.mtime });
    }
    const e = file(join(root, r.name, 'eval.json'));
    if (stages.length === 0 && !e.exists) continue;
    const updated = Math.max(e.mtime ?? 0, ...stages.map((s) => s.updated ?? 0)) || null;
    runs.push({ id: r.name, stages: orderStages(stages), eval: e.exists, updated });
  }
  return runs.sort((a, b) => (b.updated ?? 0) - (a.updated ?? 0));
}

// The pipeline's order first (DESIGN.md), then any other stage by name.
const ORDER = ['tokenizer', 'data', 'base', 'sft', 'rm', 'dpo', 'ppo', 'grpo'];
function orderStages(s: StageInfo[]): StageInfo[] {
  const rank = (n: string) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return s.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
}

// The listing's own entry for a requested id, or null.
function findRun(root: string, id: string): RunInfo | null {
  return listRuns(root).find((r) => r.id === id) ?? null;
}

// Records from index `since` on (the page polls with the count it has, so a live run sends only what is new).
export function runMetrics(root: string, runId: string, stageName: string, since = 0): { records: MetricsRecord[]; total: number } | null {
  const run = findRun(root, runId);
  const stage = run?.stages.find((s) => s.name === stageName && s.metrics);
  if (!run || !stage) return null;
  const all = readMetrics(join(root, run.id, stage.name, 'metrics.jsonl'));
  return { records: all.slice(Math.max(0, since)), total: all.length };
}

// The eval report of a run (stage null) or of one stage; a report that is not valid JSON reads as null.
export function runEval(root: string, runId: string, stageName: string | null): unknown | null {
  const run = findRun(root, runId);
  if (!run) return null;
  let path: string;
  if (stageName === null) {
    if (!run.eval) return null;
    path = join(root, run.id, 'eval.json');
  } else {
    const stage = run.stages.find((s) => s.name === stageName && s.eval);
    if (!stage) return null;
    path = join(root, run.id, stage.name, 'eval.json');
  }
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}
