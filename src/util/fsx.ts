// File helpers. Every file is written to a temporary name in the same directory, flushed to disk and renamed, so a crash
// never leaves a half-written file under the real name (rename is atomic on POSIX file systems).
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { UserError } from './errors.js';

export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    const parts = Array.isArray(data) ? data : [data];
    for (const part of parts) {
      const buf = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

export function readJson(path: string, what: string, hint?: string): any {
  if (!existsSync(path)) throw new UserError(`${what} not found: ${path}`, hint);
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${what} is not valid JSON: ${path}: ${(e as Error).message}`, hint);
  }
}
