// Append-only JSONL logs that survive a crash: each record is one line, written with a single write() to a file opened
// O_APPEND and fsync'd before append() returns, so a record the caller was told about is on disk. A crash (kill -9, power)
// can leave only the LAST line torn: a prefix of a record without its newline (or the zeros some file systems show past
// the written end). Readers drop such a tail and say so; an appender cuts it off before writing, so a torn line never
// glues onto the next record. A line that does not parse anywhere else is corruption, reported with its line number,
// never skipped in silence.
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from './errors.js';
import { checkJsonDepth, readFileChecked, writeError } from './fsx.js';

export interface JsonlLog {
  records: unknown[];
  end: number;            // byte offset just past the last complete record (and its newline, when it has one)
  torn: number;           // bytes of a torn last line (0 when none)
  newlineMissing: boolean; // the last record parsed but its newline was never written
}

// Parse a log. `what` names the file in errors ("rankings.jsonl").
export function parseJsonlLog(buf: Buffer, what: string): JsonlLog {
  const records: unknown[] = [];
  let start = 0;
  let line = 0;
  while (start < buf.length) {
    line++;
    const nl = buf.indexOf(0x0a, start);
    const last = nl < 0;
    const text = buf.subarray(start, last ? buf.length : nl).toString('utf8');
    if (text.trim() === '' && !last) {
      start = nl + 1;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      if (last) return { records, end: start, torn: buf.length - start, newlineMissing: false };
      throw new UserError(`${what} line ${line} is not valid JSON (${(e as Error).message})`,
        'the file was edited or damaged; fix or remove that line (the lines before it are intact)');
    }
    checkJsonDepth(text, `${what} line ${line}`, 'the file was edited or damaged; fix or remove that line');
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      if (last) return { records, end: start, torn: buf.length - start, newlineMissing: false };
      throw new UserError(`${what} line ${line} is not a JSON object`, 'each line must be one JSON object');
    }
    records.push(value);
    if (last) return { records, end: buf.length, torn: 0, newlineMissing: true };
    start = nl + 1;
  }
  return { records, end: buf.length, torn: 0, newlineMissing: false };
}

export function readJsonlLog(path: string, what = path): JsonlLog {
  if (!existsSync(path)) return { records: [], end: 0, torn: 0, newlineMissing: false };
  return parseJsonlLog(readFileChecked(path, 'log'), what);
}

// fsync a directory, so a file created in it survives a crash along with its contents.
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// The one writer of a log. Opening repairs the tail (cuts a torn line, adds a missing newline) and returns what was
// there; append() returns once the line is on disk. An append that fails (a full disk) cuts the file back to where it
// was, so the record is wholly absent and the next one does not glue onto a torn line.
export class JsonlAppender {
  private fd: number;
  private size = 0; // bytes of whole records in the file
  readonly existing: JsonlLog;

  constructor(readonly path: string, what = path) {
    const created = !existsSync(path);
    if (created) mkdirSync(dirname(path), { recursive: true });
    try {
      this.fd = openSync(path, 'a+');
    } catch (e) {
      throw writeError(e, path); // a folder where the log should be, no permission: named
    }
    try {
      this.existing = parseJsonlLog(readFileSync(path), what);
      this.size = this.existing.end;
      if (this.existing.torn > 0) {
        ftruncateSync(this.fd, this.existing.end);
        fsyncSync(this.fd);
      } else if (this.existing.newlineMissing) this.writeAll(Buffer.from('\n'));
      if (created) fsyncDir(dirname(path));
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  append(record: object): void {
    if (this.fd < 0) throw new Error(`append to a closed log: ${this.path}`);
    this.writeAll(Buffer.from(JSON.stringify(record) + '\n', 'utf8'));
  }

  private writeAll(buf: Buffer): void {
    // one write() for the whole line (O_APPEND places it at the end); the loop only finishes a short write
    const start = this.size;
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
      fsyncSync(this.fd);
      this.size = start + buf.length;
    } catch (e) {
      try {
        ftruncateSync(this.fd, start);
        fsyncSync(this.fd);
      } catch {
        // the disk refuses even this: the torn tail is cut off when the log is next opened
      }
      throw e;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
