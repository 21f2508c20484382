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
// API: writeCheckpointDir(dir, write, carry) ; recoverCheckpointDir(dir) ; hasCheckpoint(dir)
//      saveTrainerState(dir, {m, v}, json) ; loadTrainerState(dir) -> {m, v, json} | null
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/fsx.js';
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
  mkdirSync(tmp, { recursive: true });
  for (const name of carry) if (existsSync(join(dir, name))) copyFileSync(join(dir, name), join(tmp, name));
  write(tmp);
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

export function loadTrainerState(dir: string): (Moments & { json: TrainerStateJson }) | null {
  if (!hasCheckpoint(dir)) return null;
  const hint = 'the checkpoint is damaged; start over with --no-resume or point --out at another folder';
  const json = readJson(join(dir, STATE_JSON), 'trainer state', hint) as TrainerStateJson;
  if (typeof json.step !== 'number') throw new UserError(`${join(dir, STATE_JSON)} has no step`, hint);
  const t = readSafetensors(join(dir, STATE_TENSORS));
  const m = t.get('optimizer.exp_avg')?.data, v = t.get('optimizer.exp_avg_sq')?.data;
  if (!m || !v || m.length !== v.length) throw new UserError(`${join(dir, STATE_TENSORS)} lacks the optimizer moments`, hint);
  return { m, v, json };
}
