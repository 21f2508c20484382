// metrics.jsonl: one JSON record per line, appended as training goes. Train records carry `loss`, evaluation records
// `valLoss`; every record has `step`. After a crash the file may hold records past the last checkpoint: a resumed run
// first drops them with filterMetrics(path, r => r.step <= step), so the file reads as if the run had never stopped.
//
// API: appendMetrics(path, record), readMetrics(path), filterMetrics(path, keep).
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeError, writeFileAtomic } from '../util/fsx.js';

export interface MetricsRecord { step: number; [key: string]: unknown }

export function appendMetrics(path: string, record: MetricsRecord): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    appendFileSync(path, JSON.stringify(record) + '\n');
  } catch (e) {
    throw writeError(e, path);
  }
}

// Records in file order; a torn last line (a crash mid-append) is skipped.
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line);
      if (typeof r?.step === 'number') out.push(r);
    } catch {
      // torn line
    }
  }
  return out;
}

// Rewrites the file (atomically) with the records `keep` accepts; returns them.
export function filterMetrics(path: string, keep: (r: MetricsRecord) => boolean): MetricsRecord[] {
  const kept = readMetrics(path).filter(keep);
  writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  return kept;
}
