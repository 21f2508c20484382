// Token shards: the on-disk form of a tokenized corpus. This module knows bytes and token ids, not text.
//
// A shard file (`train_000.bin`, `val_000.bin`) is a 32-byte little-endian header, then the ids:
//   0  8 bytes  magic "CWTOKENS"
//   8  uint32   version (1)
//  12  uint32   bytes per token: 2 (uint16, vocab <= 65536) or 4 (uint32)
//  16  uint64   token count
//  24  8 bytes  reserved (zero)
// Documents are separated by the beginning-of-text token: each document is written as [bos, ...ids].
// `manifest.json` lists the shards of each split with their counts; it is written LAST, so its existence means the
// preparation completed (nanochat's dataset download does the same).
//
// Reading checks everything before it sizes anything from it: the manifest's fields and counts (and that each shard
// file is as long as its count says), the shard headers, and every token id against the vocabulary, naming the file.
//
// API: ShardWriter (append documents, flush shards), readShard(path), writeManifest/readManifest(dir),
// loadSplit(dir, 'train' | 'val') -> one concatenated TokenArray, unigramEntropy(tokens, vocabSize);
// ShardStream: the same concatenated stream read from the files on demand (a split larger than memory), and
// openSplit, which gives the array when the split fits in the memory allowed and the stream otherwise.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readFileChecked, readJson, writeFileAtomic, writeJsonAtomic } from '../util/fsx.js';

export const SHARD_MAGIC = 'CWTOKENS';
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 32;
export const MANIFEST = 'manifest.json';

export type TokenArray = Uint16Array | Uint32Array;
export type Split = 'train' | 'val';

export interface ShardInfo { file: string; tokens: number; documents: number }
export interface Manifest {
  format: 'chatwright-shards';
  version: number;
  vocabSize: number;
  bos: number;
  dtype: 'uint16' | 'uint32';
  tokenizer: string | null;      // the tokenizer's directory, relative to the data directory (a copy is kept there)
  sources: string[];             // corpus names or paths
  valFraction: number;
  train: ShardInfo[];
  val: ShardInfo[];
}

export function dtypeFor(vocabSize: number): 'uint16' | 'uint32' {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function encodeShard(ids: ArrayLike<number>, dtype: 'uint16' | 'uint32'): Uint8Array {
  const width = dtype === 'uint16' ? 2 : 4;
  const buf = new Uint8Array(HEADER_BYTES + ids.length * width);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < 8; i++) buf[i] = SHARD_MAGIC.charCodeAt(i);
  dv.setUint32(8, SHARD_VERSION, true);
  dv.setUint32(12, width, true);
  dv.setBigUint64(16, BigInt(ids.length), true);
  const max = dtype === 'uint16' ? 0xffff : 0xffffffff;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id <= max && Number.isInteger(id))) throw new Error(`token id ${id} does not fit in ${dtype}`);
    if (width === 2) dv.setUint16(HEADER_BYTES + 2 * i, id, true);
    else dv.setUint32(HEADER_BYTES + 4 * i, id, true);
  }
  return buf;
}

// Checks a shard's header against the file's size; returns its token width and count.
function parseHeader(head: Uint8Array, fileBytes: number, path: string): { width: 2 | 4; count: number } {
  const bad = (why: string) =>
    new UserError(`not a valid token shard (${why}): ${path}`, 'run `chatwright data prepare` again to rebuild the shards');
  if (fileBytes < HEADER_BYTES || head.length < HEADER_BYTES) throw bad('shorter than its header');
  if (Buffer.from(head.buffer, head.byteOffset, 8).toString('latin1') !== SHARD_MAGIC) throw bad('bad magic');
  const dv = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
  const version = dv.getUint32(8, true);
  if (version !== SHARD_VERSION) throw bad(`version ${version}, expected ${SHARD_VERSION}`);
  const width = dv.getUint32(12, true);
  if (width !== 2 && width !== 4) throw bad(`token width ${width}`);
  const count = Number(dv.getBigUint64(16, true));
  if (fileBytes !== HEADER_BYTES + count * width) throw bad(`${fileBytes} bytes for ${count} tokens of ${width} bytes`);
  return { width, count };
}

export function readShard(path: string): TokenArray {
  const raw = readFileChecked(path, 'token shard', 'run `chatwright data prepare` again');
  const { width, count } = parseHeader(raw, raw.length, path);
  // copy into an aligned buffer (the file buffer may not be aligned to the token width); assumes a little-endian host
  const bytes = new Uint8Array(count * width);
  bytes.set(raw.subarray(HEADER_BYTES));
  return width === 2 ? new Uint16Array(bytes.buffer) : new Uint32Array(bytes.buffer);
}

// Accumulates documents of one split and writes a shard each time `shardTokens` tokens have gathered.
export class ShardWriter {
  private buf: number[] = [];
  private docs = 0;
  readonly shards: ShardInfo[] = [];
  tokens = 0;
  documents = 0;

  constructor(
    private readonly dir: string,
    private readonly split: Split,
    private readonly dtype: 'uint16' | 'uint32',
    private readonly bos: number,
    private readonly shardTokens = 1 << 24,
  ) {}

  add(ids: ArrayLike<number>): void {
    this.buf.push(this.bos);
    for (let i = 0; i < ids.length; i++) this.buf.push(ids[i]);
    this.docs++;
    this.documents++;
    this.tokens += ids.length + 1;
    if (this.buf.length >= this.shardTokens) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const file = `${this.split}_${String(this.shards.length).padStart(3, '0')}.bin`;
    writeFileAtomic(join(this.dir, file), encodeShard(this.buf, this.dtype));
    this.shards.push({ file, tokens: this.buf.length, documents: this.docs });
    this.buf = [];
    this.docs = 0;
  }
}

export function writeManifest(dir: string, m: Manifest): void {
  writeJsonAtomic(join(dir, MANIFEST), m);
}

export function readManifest(dir: string): Manifest {
  const hint = `prepare the data first: chatwright data prepare --corpus chinese-poetry --tokenizer DIR --out ${dir}`;
  if (!existsSync(dir)) throw new UserError(`data directory not found: ${dir}`, hint);
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) {
    throw new UserError(`no ${MANIFEST} in ${dir}: the data preparation did not complete or never ran`, hint);
  }
  return validateManifest(readJson(path, 'data manifest', hint), path, hint);
}

// Every field the loader and the stages read, checked where the manifest is parsed.
export function validateManifest(m: any, path: string, hint: string): Manifest {
  const bad = (what: string) => new UserError(`${path}: ${what}`, hint);
  if (typeof m !== 'object' || m === null || m.format !== 'chatwright-shards') throw bad('not a chatwright shard manifest');
  if (m.version !== 1) throw bad(`version ${JSON.stringify(m.version)} is not 1`);
  if (!(Number.isInteger(m.vocabSize) && m.vocabSize >= 1 && m.vocabSize <= 2 ** 32)) throw bad(`vocabSize ${JSON.stringify(m.vocabSize)} is not a whole number in [1, 2^32]`);
  if (m.dtype !== dtypeFor(m.vocabSize)) throw bad(`dtype ${JSON.stringify(m.dtype)} does not hold a vocabulary of ${m.vocabSize} (expected ${dtypeFor(m.vocabSize)})`);
  if (!(Number.isInteger(m.bos) && m.bos >= 0 && m.bos < m.vocabSize)) throw bad(`bos ${JSON.stringify(m.bos)} is not a token id below ${m.vocabSize}`);
  if (m.tokenizer !== null && typeof m.tokenizer !== 'string') throw bad(`tokenizer ${JSON.stringify(m.tokenizer)} is not a folder name`);
  for (const split of ['train', 'val'] as const) {
    if (!Array.isArray(m[split])) throw bad(`"${split}" is not a list of shards`);
    for (const [i, x] of (m[split] as unknown[]).entries()) {
      const s = x as Record<string, unknown> | null;
      const where = `${split}[${i}]`;
      if (typeof s !== 'object' || s === null) throw bad(`${where} is not {file, tokens, documents}`);
      // a plain file name inside the data folder: no path may lead out of it
      if (typeof s.file !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(s.file) || s.file.startsWith('.')) throw bad(`${where}.file ${JSON.stringify(s.file)} is not a shard file name`);
      if (!(Number.isSafeInteger(s.tokens) && (s.tokens as number) >= 0)) throw bad(`${where}.tokens ${JSON.stringify(s.tokens)} is not a count`);
      if (!(Number.isSafeInteger(s.documents) && (s.documents as number) >= 0)) throw bad(`${where}.documents ${JSON.stringify(s.documents)} is not a count`);
    }
  }
  if (!m.train.some((s: ShardInfo) => s.tokens > 0)) throw bad('lists no training tokens');
  return m as Manifest;
}

// All shards of a split, concatenated in order, in memory (20 M tokens are 40 MB as uint16). Each shard's size on disk
// is checked against the manifest before the split is allocated, and each id against the vocabulary.
export function loadSplit(dir: string, split: Split, m: Manifest = readManifest(dir)): TokenArray {
  const infos = m[split];
  const width = m.dtype === 'uint16' ? 2 : 4;
  const again = 'run `chatwright data prepare` again';
  let total = 0;
  for (const s of infos) {
    const path = join(dir, s.file);
    let size = -1;
    try {
      size = statSync(path).size;
    } catch {
      throw new UserError(`token shard not found: ${path} (listed in ${MANIFEST})`, again);
    }
    if (size !== HEADER_BYTES + s.tokens * width) {
      throw new UserError(`shard ${path} is ${size} bytes; ${MANIFEST} says ${s.tokens} tokens of ${width} bytes (${HEADER_BYTES + s.tokens * width} bytes)`, again);
    }
    total += s.tokens;
  }
  const out = m.dtype === 'uint16' ? new Uint16Array(total) : new Uint32Array(total);
  let off = 0;
  for (const s of infos) {
    const path = join(dir, s.file);
    const t = readShard(path);
    if (t.length !== s.tokens || (t instanceof Uint16Array) !== (out instanceof Uint16Array)) {
      throw new UserError(`shard ${path} does not match ${MANIFEST} (${t.length} tokens of ${t.BYTES_PER_ELEMENT} bytes, manifest says ${s.tokens} of ${width})`, again);
    }
    for (let i = 0; i < t.length; i++) {
      if (t[i] >= m.vocabSize) throw new UserError(`shard ${path} holds token id ${t[i]} at position ${i}, outside the vocabulary of ${m.vocabSize}`, again);
    }
    out.set(t, off);
    off += t.length;
  }
  return out;
}

// Unigram entropy of the token stream, in nats: -sum_v p(v) ln p(v) with p from the counts. A model that has learned
// nothing but token frequencies reaches exactly this cross-entropy, so a loss below it means context is being used.
export function unigramEntropy(tokens: TokenArray, vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < tokens.length; i++) counts[tokens[i]]++;
  let h = 0;
  for (let v = 0; v < vocabSize; v++) {
    if (counts[v] > 0) {
      const p = counts[v] / tokens.length;
      h -= p * Math.log(p);
    }
  }
  return h;
}

// ---- a split read from its files on demand

// The tokens a loader cuts windows from: the whole split in memory, or a ShardStream. Both answer length and
// subarray(begin, end); a ShardStream's subarray is a view that is valid until its next call.
export type Tokens = TokenArray | ShardStream;

// Memory a split may take before openSplit streams it instead: CHATWRIGHT_DATA_MEMORY_MB, else a quarter of RAM.
export function splitMemoryLimit(): number {
  const mb = Number(process.env.CHATWRIGHT_DATA_MEMORY_MB);
  return process.env.CHATWRIGHT_DATA_MEMORY_MB !== undefined && mb >= 0 ? mb * 2 ** 20 : totalmem() / 4;
}

// A split in memory when it fits in `limit` bytes, else streamed from its shards (same tokens, same order: a loader
// makes the same batches from either, and a checkpoint's cursor resumes either).
export function openSplit(dir: string, split: Split, m: Manifest = readManifest(dir), limit = splitMemoryLimit(),
  log?: (line: string) => void): Tokens {
  const width = m.dtype === 'uint16' ? 2 : 4, bytes = m[split].reduce((s, x) => s + x.tokens, 0) * width;
  if (bytes <= limit) return loadSplit(dir, split, m);
  const stream = new ShardStream(dir, split, m);
  log?.(`the ${split} split (${(bytes / 2 ** 20).toFixed(0)} MiB in ${m[split].length} shards) is larger than the ` +
    `${(limit / 2 ** 20).toFixed(0)} MiB allowed in memory (CHATWRIGHT_DATA_MEMORY_MB): reading it from the shards as training goes`);
  return stream;
}

// Every token id below vocabSize; a ShardStream checks each block as it reads it instead of the whole split up front.
export function checkTokenIds(tokens: Tokens, vocabSize: number): void {
  if (tokens instanceof ShardStream) return;
  let maxId = 0;
  for (let i = 0; i < tokens.length; i++) if (tokens[i] > maxId) maxId = tokens[i];
  if (maxId >= vocabSize) {
    throw new UserError(`the shards hold token id ${maxId}, outside the vocabulary of ${vocabSize}`, 'prepare the data again');
  }
}

// The concatenated tokens of a split's shards, read with positioned reads (there is no mmap in Node) in blocks of
// `blockTokens` aligned in the whole stream, the last `cacheBlocks` of them kept (least recently used goes first), so
// memory stays at a few MiB whatever the corpus size. A window that crosses blocks (or shards) is copied into a
// scratch buffer. Every header is checked at open and every block's ids against the vocabulary as it is read. At
// most MAX_OPEN shard files are open at once; close() closes them (the process's end does too).
export class ShardStream {
  readonly length: number;
  private readonly width: 2 | 4;
  private readonly files: { path: string; name: string; start: number; tokens: number }[] = [];
  private readonly blocks = new Map<number, TokenArray>(); // block index -> tokens; Map order is the LRU order
  private readonly fds = new Map<number, number>(); // file index -> fd, LRU order likewise
  private scratch: TokenArray;
  private readonly vocabSize: number;
  private static readonly MAX_OPEN = 16;

  constructor(dir: string, split: Split, m: Manifest, readonly blockTokens = 1 << 14, readonly cacheBlocks = 64) {
    this.width = m.dtype === 'uint16' ? 2 : 4;
    this.vocabSize = m.vocabSize;
    let start = 0;
    for (const info of m[split]) {
      const path = join(dir, info.file);
      if (!existsSync(path)) throw new UserError(`token shard not found: ${path}`, 'run `chatwright data prepare` again');
      const fd = openSync(path, 'r');
      try {
        const head = new Uint8Array(HEADER_BYTES);
        readSync(fd, head, 0, HEADER_BYTES, 0);
        const { width, count } = parseHeader(head, fstatSync(fd).size, path);
        if (width !== this.width || count !== info.tokens) {
          throw new UserError(`shard ${info.file} does not match ${MANIFEST} (${count} tokens of ${width} bytes, manifest says ` +
            `${info.tokens} of ${this.width})`, 'run `chatwright data prepare` again');
        }
      } finally {
        closeSync(fd);
      }
      this.files.push({ path, name: info.file, start, tokens: info.tokens });
      start += info.tokens;
    }
    this.length = start;
    this.scratch = this.alloc(1024);
  }

  private alloc(n: number): TokenArray {
    return this.width === 2 ? new Uint16Array(n) : new Uint32Array(n);
  }

  // tokens [begin, end) of the split; a view, valid until the next call
  subarray(begin: number, end: number): TokenArray {
    end = Math.min(end, this.length);
    begin = Math.max(0, Math.min(begin, end));
    const bt = this.blockTokens, b0 = Math.floor(begin / bt), b1 = Math.floor(Math.max(begin, end - 1) / bt);
    if (b0 === b1) return this.block(b0).subarray(begin - b0 * bt, end - b0 * bt);
    if (this.scratch.length < end - begin) this.scratch = this.alloc(end - begin);
    for (let b = b0, o = 0; b <= b1; b++) {
      const lo = Math.max(begin, b * bt), hi = Math.min(end, (b + 1) * bt);
      this.scratch.set(this.block(b).subarray(lo - b * bt, hi - b * bt), o);
      o += hi - lo;
    }
    return this.scratch.subarray(0, end - begin);
  }

  // tokens now held in memory by the block cache
  get cachedTokens(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.length;
    return n;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  private block(b: number): TokenArray {
    let t = this.blocks.get(b);
    if (t) {
      this.blocks.delete(b); // most recently used goes last
      this.blocks.set(b, t);
      return t;
    }
    const begin = b * this.blockTokens, end = Math.min(this.length, begin + this.blockTokens);
    t = this.blocks.size >= this.cacheBlocks ? this.reuse(end - begin) : this.alloc(end - begin);
    const bytes = new Uint8Array(t.buffer, t.byteOffset, (end - begin) * this.width);
    // the files this block overlaps (binary search for the first)
    let lo = 0, hi = this.files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.files[mid].start <= begin) lo = mid;
      else hi = mid - 1;
    }
    for (let f = lo, pos = begin; pos < end; f++) {
      const file = this.files[f], n = Math.min(end, file.start + file.tokens) - pos;
      if (n <= 0) continue;
      let done = 0, want = n * this.width, off = (pos - begin) * this.width;
      const at = HEADER_BYTES + (pos - file.start) * this.width;
      while (done < want) {
        const r = readSync(this.fd(f), bytes, off + done, want - done, at + done);
        if (r === 0) throw new UserError(`token shard ${file.path} ended early (it changed after it was opened)`, 'run `chatwright data prepare` again');
        done += r;
      }
      pos += n;
    }
    for (let i = 0; i < t.length; i++) {
      if (t[i] >= this.vocabSize) {
        const at = begin + i;
        let f = this.files[lo];
        for (const x of this.files) if (x.start <= at) f = x;
        throw new UserError(`shard ${f.name} holds token id ${t[i]} at position ${at - f.start}, outside the vocabulary of ` +
          `${this.vocabSize}`, 'prepare the data again');
      }
    }
    this.blocks.set(b, t);
    return t;
  }

  // evicts the least recently used block and returns its buffer for n tokens (the last block may be shorter)
  private reuse(n: number): TokenArray {
    const [oldest, t] = this.blocks.entries().next().value as [number, TokenArray];
    this.blocks.delete(oldest);
    return t.length === n ? t : t.length > n ? t.subarray(0, n) : this.alloc(n);
  }

  private fd(f: number): number {
    let fd = this.fds.get(f);
    if (fd !== undefined) {
      this.fds.delete(f);
      this.fds.set(f, fd);
      return fd;
    }
    if (this.fds.size >= ShardStream.MAX_OPEN) {
      const [oldest, ofd] = this.fds.entries().next().value as [number, number];
      closeSync(ofd);
      this.fds.delete(oldest);
    }
    fd = openSync(this.files[f].path, 'r');
    this.fds.set(f, fd);
    return fd;
  }
}
