// The layering of src/ (DESIGN.md "Layers"): util <- tensor, tokenizer <- model <- train <- generate <- feedback (it
// samples answers) <- stages <- serve <- cli (a command starts the server). A file may import its own folder and any
// lower layer, never a higher one or a sibling of its own rank
// (model/gpt.ts once imported train/rng.ts; the seeded generator now lives in util). Static and dynamic imports count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../src', import.meta.url)); // dist/test -> the TypeScript sources

// Rank of each folder; a folder may import only folders of a lower rank (and itself).
const RANK: Record<string, number> = {
  util: 0, tensor: 1, tokenizer: 1, model: 2, train: 3, generate: 4, feedback: 5, stages: 6, serve: 7, cli: 8,
};

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('src/ folders import only lower layers (and themselves)', () => {
  const problems: string[] = [];
  const files = tsFiles(ROOT);
  assert.ok(files.length > 20, `found only ${files.length} files under ${ROOT}`);
  for (const file of files) {
    const rel = relative(ROOT, file).split(sep);
    const from = rel[0];
    if (rel.length === 1) continue; // nothing lives at the top of src/
    if (!(from in RANK)) {
      problems.push(`src/${from}/ has no place in the layer table of test/layers.test.ts: add it`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.\.\/[^']+)'/g)) {
      const to = m[1].split('/')[1];
      if (to === from) continue;
      if (!(to in RANK)) problems.push(`${rel.join('/')} imports ${m[1]}: src/${to}/ is not in the layer table`);
      else if (RANK[to] >= RANK[from]) problems.push(`${rel.join('/')} (layer ${from}) imports ${m[1]} (layer ${to}, not lower)`);
    }
  }
  assert.deepEqual(problems, []);
});
