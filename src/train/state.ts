// Trainer state and the checkpoint folder. A checkpoint folder is a Hugging Face model directory (config.json,
// model.safetensors, tokenizer files, written by the caller) plus trainer_state.safetensors (optimizer moments over the
// flat parameter buffer) and trainer_state.json (step, RNG state, data cursor, config, best validation loss, ...).
//
// Crash safety: a checkpoint is written completely into `<dir>.tmp`, then swapped in with two renames
// (`<dir>` -> `<dir>.old`, `<dir>.tmp` -> `<dir>`) and the old folder removed. A crash at any moment leaves either the old
// or the new checkpoint under one of those names; recoverCheckpointDir() puts it back before anything reads it, and an
// unfinished `.tmp` is deleted. trainer_state.json is written last inside the folder, so a folder without it is not a
// checkpoint.
//
// A checkpoint that cannot be written whole (a full disk) leaves the previous one as it was and removes its unfinished
// `.tmp`. Loading checks every value the stages read back (step, RNG words, data cursor, options, the moments) and
// names the file and the value that is wrong.
//
// API: writeCheckpointDir(dir, write, carry) ; recoverCheckpointDir(dir) ; hasCheckpoint(dir)
//      saveTrainerState(dir, {m, v}, json) ; loadTrainerState(dir) -> {m, v, json} | null ; validateTrainerState(json, where)
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson, writeError, writeJsonAtomic } from '../util/fsx.js';
import { Rng } from '../util/rng.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';

export const STATE_JSON = 'trainer_state.json';
export const STATE_TENSORS = 'trainer_state.safetensors';

export interface TrainerStateJson { version: number; step: number; [key: string]: unknown }
export interface Moments { m: Float32Array; v: Float32Array }

export function recoverCheckpointDir(dir: string): void {
  const tmp = `${dir}.tmp`, old = `${dir}.old`;
  if (!existsSync(dir) && existsSync(join(old, STATE_JSON))) renameSync(old, dir); // crashed between the two renames
  rmSync(tmp, { recursive: true, force: true });
  if (existsSync(dir)) rmSync(old, { recursive: true, force: true });
}

export function hasCheckpoint(dir: string): boolean {
  recoverCheckpointDir(dir);
  return existsSync(join(dir, STATE_JSON));
}

// write(tmpDir) fills the new folder (it must call saveTrainerState last); `carry` names files of the current folder
// (metrics.jsonl) copied into the new one first.
export function writeCheckpointDir(dir: string, write: (tmpDir: string) => void, carry: string[] = []): void {
  recoverCheckpointDir(dir);
  const tmp = `${dir}.tmp`, old = `${dir}.old`;
  try {
    mkdirSync(tmp, { recursive: true });
    for (const name of carry) if (existsSync(join(dir, name))) copyFileSync(join(dir, name), join(tmp, name));
    write(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // give back the space; the previous checkpoint is untouched
    throw writeError(e, tmp);
  }
  if (!existsSync(join(tmp, STATE_JSON))) throw new Error(`checkpoint writer did not write ${STATE_JSON}`);
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

export function saveTrainerState(dir: string, moments: Moments, json: TrainerStateJson): void {
  writeSafetensors(join(dir, STATE_TENSORS), new Map([
    ['optimizer.exp_avg', { shape: [moments.m.length], data: moments.m }],
    ['optimizer.exp_avg_sq', { shape: [moments.v.length], data: moments.v }],
  ]), { format: 'chatwright-trainer-state', step: String(json.step) });
  writeJsonAtomic(join(dir, STATE_JSON), json);
}

const DAMAGED = 'the checkpoint is damaged; start over with --no-resume or point --out at another folder';

// What a stage expects of its trainer state: the fields it reads (`required`), each saved option's type (`defaults`: a
// number, string, boolean, object; null: a number, string or null) and the stage's own checks of the saved options
// (`resolve`). Their errors name the file.
export interface TrainerStateCheck {
  required?: string[];
  defaults?: Record<string, unknown>;
  resolve?: (saved: Record<string, unknown>) => unknown;
}

export function loadTrainerState(dir: string, expect: TrainerStateCheck = {}): (Moments & { json: TrainerStateJson }) | null {
  if (!hasCheckpoint(dir)) return null;
  const path = join(dir, STATE_JSON);
  const json = validateTrainerState(readJson(path, 'trainer state', DAMAGED), path);
  for (const k of expect.required ?? []) if (json[k] === undefined) throw new UserError(`${path}: "${k}" is missing`, DAMAGED);
  checkSavedOptions((json.options ?? {}) as Record<string, unknown>, expect, path);
  const tpath = join(dir, STATE_TENSORS);
  const t = readSafetensors(tpath);
  const m = t.get('optimizer.exp_avg')?.data, v = t.get('optimizer.exp_avg_sq')?.data;
  if (!m || !v || m.length !== v.length) throw new UserError(`${tpath} lacks the optimizer moments`, DAMAGED);
  // AdamW's moments: m finite, v finite and >= 0 (a NaN here would surface steps later as a "diverged" loss)
  for (let i = 0; i < m.length; i++) {
    if (!Number.isFinite(m[i]) || !(v[i] >= 0 && v[i] < Infinity)) {
      const [name, x] = Number.isFinite(m[i]) ? ['optimizer.exp_avg_sq', v[i]] : ['optimizer.exp_avg', m[i]];
      throw new UserError(`${tpath}: ${name} holds ${x} at index ${i}`, DAMAGED);
    }
  }
  return { m, v, json };
}

// Every value of trainer_state.json that a stage reads back, checked where it is parsed: the run options are numbers
// >= 0 (every option of every stage is), strings, booleans, null or objects of those (the model overrides).
export function validateTrainerState(j: unknown, where: string): TrainerStateJson {
  const bad = (what: string) => new UserError(`${where}: ${what}`, DAMAGED);
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw bad('not a JSON object');
  const o = j as Record<string, unknown>;
  if (o.version !== 1) throw bad(`version ${JSON.stringify(o.version)} is not 1`);
  if (!count(o.step)) throw bad(`step ${JSON.stringify(o.step)} is not a whole number >= 0`);
  if (o.optimizerStep !== undefined && !count(o.optimizerStep)) throw bad(`optimizerStep ${JSON.stringify(o.optimizerStep)} is not a whole number >= 0`);
  if (o.rng !== undefined && !Rng.isState(o.rng)) throw bad(`rng ${JSON.stringify(o.rng)} is not four uint32 words (not all zero)`);
  if (o.cursor !== undefined) {
    const c = o.cursor as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || !count(c.epoch) || !count(c.index)) {
      throw bad(`cursor ${JSON.stringify(o.cursor)} is not {epoch, index} of whole numbers >= 0`);
    }
  }
  if (o.bestValLoss !== undefined && o.bestValLoss !== null && !Number.isFinite(o.bestValLoss)) throw bad(`bestValLoss ${JSON.stringify(o.bestValLoss)} is not a number`);
  for (const k of ['stage', 'data', 'dataFingerprint'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw bad(`${k} ${JSON.stringify(o[k])} is not a string`);
  }
  if (o.options !== undefined) {
    if (typeof o.options !== 'object' || o.options === null || Array.isArray(o.options)) throw bad(`options ${JSON.stringify(o.options)?.slice(0, 60)} is not an object`);
    checkOptions(o.options, 'options', bad);
  }
  return o as TrainerStateJson;
}

function checkSavedOptions(saved: Record<string, unknown>, expect: TrainerStateCheck, where: string): void {
  for (const [k, want] of Object.entries(expect.defaults ?? {})) {
    const v = saved[k];
    if (v === undefined) continue;
    const ok = want === null ? v === null || typeof v === 'string' || typeof v === 'number'
      : typeof want === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v) : typeof v === typeof want;
    if (!ok) throw new UserError(`${where}: options.${k} is ${JSON.stringify(v)?.slice(0, 60)}, not a ${want === null ? 'number, text or null' : typeof want}`, DAMAGED);
  }
  try {
    expect.resolve?.(saved);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: the saved options: ${e.message}`, DAMAGED);
    throw e;
  }
}

function checkOptions(v: unknown, path: string, bad: (what: string) => UserError): void {
  if (typeof v === 'number') {
    if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER)) throw bad(`${path} is ${v}; run options are numbers in [0, 2^53]`);
  } else if (typeof v === 'object' && v !== null) {
    if (Array.isArray(v)) throw bad(`${path} is an array`);
    for (const [k, x] of Object.entries(v)) checkOptions(x, `${path}.${k}`, bad);
  } else if (typeof v !== 'string' && typeof v !== 'boolean' && v !== null) {
    throw bad(`${path} is ${JSON.stringify(v)}`);
  }
}
