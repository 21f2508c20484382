// File helpers. Every file is written to a temporary name in the same directory, flushed to disk and renamed, so a crash
// never leaves a half-written file under the real name (rename is atomic on POSIX file systems). Reading goes through
// readFileChecked / readJson, which turn what the file system and JSON.parse say into UserErrors naming the file: not
// found, a folder where a file is expected (EISDIR), no permission, invalid JSON, JSON nested too deep for the code
// that walks it. A write that finds the disk full says which disk and how much is free; the file it was replacing is
// untouched.
//
// Test hook: CHATWRIGHT_TEST_DISK_BYTES=n lets this process write n bytes through writeFileAtomic, then fails every
// write with ENOSPC, as a disk that fills up mid-checkpoint would (test/faults.test.ts).
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, rmSync, readFileSync, statfsSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { UserError } from './errors.js';

let diskBudget = process.env.CHATWRIGHT_TEST_DISK_BYTES !== undefined ? Number(process.env.CHATWRIGHT_TEST_DISK_BYTES) : Infinity;

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    let n = buf.length - off;
    if (n > diskBudget) {
      n = Math.max(0, diskBudget);
      if (n === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write (CHATWRIGHT_TEST_DISK_BYTES)'), { code: 'ENOSPC', simulated: true });
    }
    const wrote = writeSync(fd, buf, off, n);
    if (diskBudget !== Infinity) diskBudget -= wrote;
    off += wrote;
  }
}

export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  let fd = -1;
  try {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(tmp, 'w');
    const parts = Array.isArray(data) ? data : [data];
    for (const part of parts) writeAll(fd, typeof part === 'string' ? Buffer.from(part, 'utf8') : part);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw writeError(e, path);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

// A failed write as the user needs it: a full disk names the disk (the mount point's free space) and what to do; a
// path that cannot be made (a file where a folder should be, no permission) names the path. Anything else is passed on.
export function writeError(e: unknown, path: string): unknown {
  const code = (e as { code?: string }).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    let free = '';
    try {
      const s = statfsSync(existingParent(path));
      if (!(e as { simulated?: boolean }).simulated) free = `; ${((s.bavail * s.bsize) / 1e6).toFixed(1)} MB free there`;
    } catch {}
    return new UserError(`the disk is full: writing ${path} failed (${code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on the device'}${free})`,
      'free some space (or point --out at another disk) and run the same command again; files written before were not touched');
  }
  if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR') {
    return new UserError(`cannot write ${path}: a file stands where a folder is needed, or a folder where a file is (${code})`,
      'choose another output path');
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new UserError(`cannot write ${path}: ${code === 'EROFS' ? 'the file system is read-only' : 'permission denied'}`, 'choose another output path');
  }
  return e;
}

function existingParent(path: string): string {
  let p = resolve(path);
  for (;;) {
    try {
      statfsSync(p);
      return p;
    } catch {
      const up = dirname(p);
      if (up === p) return p;
      p = up;
    }
  }
}

// The bytes of a file, or a UserError naming it: `what` says what the file is ("model config"), `hint` what to do.
export function readFileChecked(path: string, what: string, hint?: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UserError(`${what} not found: ${path}`, hint);
    if (code === 'EISDIR') throw new UserError(`${what} ${path} is a folder, not a file`, hint);
    if (code === 'EACCES' || code === 'EPERM') throw new UserError(`${what} ${path} cannot be read: permission denied`, hint);
    if (code === 'ERR_FS_FILE_TOO_LARGE') throw new UserError(`${what} ${path} is too large to read`, hint);
    throw new UserError(`${what} ${path} cannot be read: ${(e as Error).message}`, hint);
  }
}

// Deepest nesting of arrays and objects a JSON file we read may have. Our files and Hugging Face's nest a few levels;
// code that walks a parsed value recursively (JSON.stringify included) overflows the stack near 10,000.
export const MAX_JSON_DEPTH = 256;

// JSON.parse with a UserError naming the file for invalid JSON or nesting deeper than MAX_JSON_DEPTH.
export function parseJson(text: string, where: string, hint?: string): any {
  checkJsonDepth(text, where, hint);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: not valid JSON: ${(e as Error).message}`, hint);
  }
}

// A UserError naming `where` when the JSON text nests deeper than MAX_JSON_DEPTH (before anything walks it).
export function checkJsonDepth(text: string, where: string, hint?: string): void {
  let depth = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > MAX_JSON_DEPTH) throw new UserError(`${where}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, hint ?? 'the file is corrupt');
    } else if (c === 93 || c === 125) depth--;
  }
}

export function readJson(path: string, what: string, hint?: string): any {
  return parseJson(readFileChecked(path, what, hint).toString('utf8'), `${what} ${path}`, hint);
}
