// TEMPORARY (lead's branch): a minimal reader of preference JSONL until the feedback library lands; replaced at merge.
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import type { Message } from '../tokenizer/index.js';
import type { PreferenceGroup } from '../train/preferences.js';

export function readPreferenceGroups(path: string): PreferenceGroup[] {
  if (!existsSync(path)) throw new UserError(`preferences not found: ${path}`);
  const groups = new Map<string, PreferenceGroup>();
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const j = JSON.parse(line);
    const prompt: Message[] = typeof j.prompt === 'string' ? [{ role: 'user', content: j.prompt }] : j.prompt;
    const key = JSON.stringify(prompt);
    if (!groups.has(key)) groups.set(key, { prompt, responses: [], pairs: [] });
    const g = groups.get(key)!;
    const idx = (a: string) => { let k = g.responses.indexOf(a); if (k < 0) { k = g.responses.length; g.responses.push(a); } return k; };
    if (j.chosen !== undefined) g.pairs.push([idx(j.chosen), idx(j.rejected)]);
    else {
      const ids = (j.responses as string[]).map(idx);
      const rank = j.ranking as number[];
      for (let a = 0; a < rank.length; a++) for (let b = a + 1; b < rank.length; b++) g.pairs.push([ids[rank[a]], ids[rank[b]]]);
    }
    void i;
  });
  return [...groups.values()];
}

// TEMPORARY until the feedback library lands.
export function readPromptsFile(path: string): { messages: Message[] }[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => {
    const j = JSON.parse(l);
    return { messages: j.messages ?? (typeof j.prompt === 'string' ? [{ role: 'user', content: j.prompt }] : j.prompt) };
  });
}
export function labellerScore(_prompt: Message[], _answer: string): number | null {
  throw new UserError('the simulated labeller is not in this build yet');
}
