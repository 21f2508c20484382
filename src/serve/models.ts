// The models a server holds: each loaded once from its directory, with its own Batcher (its own KV cache slots), and an
// id for the API's `model` field. The id is the directory's name (runs/poems/sft -> "sft"), the parent's too when two
// would clash ("poems/sft"), or given: `--model base=runs/poems/base`.
import { basename, dirname, resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { loadModel } from '../model/checkpoint.js';
import type { GPT } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { Batcher, type BatcherOptions } from '../generate/index.js';

export interface ServedModel {
  id: string;
  created: number; // unix seconds: when the server loaded it
  model: GPT;
  tokenizer: Tokenizer;
  batcher: Batcher;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,127}$/;

// specs: "DIR" or "ID=DIR". The ids are decided before any model loads, so a clash fails fast.
export function modelIds(specs: string[]): { id: string; dir: string }[] {
  const parsed = specs.map((s) => {
    const eq = s.indexOf('=');
    return eq > 0 && ID.test(s.slice(0, eq)) ? { id: s.slice(0, eq), dir: s.slice(eq + 1), named: true } : { id: '', dir: s, named: false };
  });
  const short = (dir: string) => basename(resolve(dir));
  const long = (dir: string) => `${basename(dirname(resolve(dir)))}/${short(dir)}`;
  for (const p of parsed) {
    if (p.named) continue;
    const clash = parsed.some((q) => q !== p && !q.named && short(q.dir) === short(p.dir));
    p.id = clash ? long(p.dir) : short(p.dir);
  }
  const seen = new Set<string>();
  for (const p of parsed) {
    if (seen.has(p.id)) throw new UserError(`two models would be served as "${p.id}"`, 'name them: --model base=DIR --model sft=DIR');
    seen.add(p.id);
  }
  return parsed.map(({ id, dir }) => ({ id, dir }));
}

export function loadServedModels(specs: string[], batching: BatcherOptions): ServedModel[] {
  if (specs.length === 0) throw new UserError('serve: no model given', 'pass --model DIR (repeat it to serve several)');
  return modelIds(specs).map(({ id, dir }) => {
    const { model, tokenizer } = loadModel(dir);
    if (!tokenizer) throw new UserError(`no tokenizer in ${dir}`, 'copy tokenizer.json and tokenizer_config.json into the model directory');
    if (model.config.scalarHead) throw new UserError(`${dir} is a reward/value model (scalar head); it cannot generate`);
    return servedModel(id, model, tokenizer, batching);
  });
}

export function servedModel(id: string, model: GPT, tokenizer: Tokenizer, batching: BatcherOptions): ServedModel {
  return { id, created: Math.floor(Date.now() / 1000), model, tokenizer, batcher: new Batcher(model, tokenizer, batching) };
}
