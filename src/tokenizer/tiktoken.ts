// Reading tiktoken rank files into a vocabulary (token bytes by id = rank). This module knows the file formats; the
// encoding rule itself is in bpe.ts.
//
// Formats:
// - `.tiktoken` (openaipublic.blob.core.windows.net/encodings/*.tiktoken): one line per token, "<base64 bytes> <rank>".
// - the JSON of the npm packages tiktoken (encoders/<name>.json) and js-tiktoken (ranks/<name>.json):
//   {"pat_str", "special_tokens", "bpe_ranks"}, where bpe_ranks holds lines "<marker> <offset> <base64> <base64> ...":
//   the i-th base64 token of a line has rank offset + i (js-tiktoken's compressed form, src/core.ts).
import { UserError } from '../util/errors.js';
import { parseJson, readFileChecked } from '../util/fsx.js';
import { MAX_UNUSED_IDS, NO_BYTES, mergesFromRanks, type BPEVocab } from './bpe.js';

export interface RankFile {
  tokenBytes: Uint8Array[]; // rank -> bytes
  pattern?: string; // pat_str, when the file carries it
  specialTokens: Record<string, number>;
}

const B64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeB64(tok: string, where: string): Uint8Array {
  if (!B64.test(tok)) throw new UserError(`${where}: "${tok.slice(0, 40)}" is not base64`, 'is this a tiktoken rank file?');
  return Buffer.from(tok, 'base64'); // a Uint8Array
}

// `limit`: ranks lie below the number of tokens in the file plus MAX_UNUSED_IDS
function place(out: Uint8Array[], rank: number, bytes: Uint8Array, where: string, limit: number): void {
  if (!Number.isInteger(rank) || rank < 0 || rank >= limit) throw new UserError(`${where}: bad rank "${rank}" (ranks are whole numbers below ${limit})`, 'is this a tiktoken rank file?');
  if (out[rank] !== undefined) throw new UserError(`${where}: rank ${rank} appears twice`, 'the file is corrupt');
  out[rank] = bytes;
}

// Ranks a file skips hold no bytes (no published file skips any, but nothing forbids it).
function fillGaps(out: Uint8Array[], where: string): Uint8Array[] {
  for (let i = 0; i < out.length; i++) if (out[i] === undefined) out[i] = NO_BYTES;
  if (out.length < 256) throw new UserError(`${where}: only ${out.length} ranks; a byte-level vocabulary has at least 256`, 'the file is truncated or not a tiktoken rank file');
  return out;
}

/** "<base64> <rank>" lines. */
export function parseTiktokenRanks(text: string, where = 'tiktoken ranks'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lines = text.split('\n');
  const limit = lines.length + MAX_UNUSED_IDS;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const sp = line.indexOf(' ');
    if (sp < 0 || line.indexOf(' ', sp + 1) >= 0) {
      throw new UserError(`${where}:${i + 1}: expected "<base64 token> <rank>", got "${line.slice(0, 60)}"`, 'the file is truncated or not a tiktoken rank file');
    }
    place(out, Number(line.slice(sp + 1)), decodeB64(line.slice(0, sp), `${where}:${i + 1}`), `${where}:${i + 1}`, limit);
  }
  return fillGaps(out, where);
}

/** js-tiktoken's compressed bpe_ranks: lines "<marker> <offset> <base64>...". */
export function parseCompressedRanks(text: string, where = 'bpe_ranks'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lines = text.split('\n');
  let tokens = 0;
  for (const l of lines) tokens += l.split(' ').length;
  const limit = tokens + MAX_UNUSED_IDS;
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    const parts = lines[i].split(' ');
    const offset = Number(parts[1]);
    if (parts.length < 2 || !Number.isInteger(offset)) {
      throw new UserError(`${where}: line ${i + 1} does not start with "<marker> <offset>"`, 'the file is truncated or not a tiktoken rank file');
    }
    for (let k = 2; k < parts.length; k++) place(out, offset + k - 2, decodeB64(parts[k], `${where}: line ${i + 1}`), `${where}: line ${i + 1}`, limit);
  }
  return fillGaps(out, where);
}

/** A tiktoken rank file: `.tiktoken` text or the npm packages' JSON. */
export function readRankFile(path: string): RankFile {
  const text = readFileChecked(path, 'tiktoken rank file').toString('utf8');
  if (text.trimStart().startsWith('{')) {
    const obj = parseJson(text, path, 'the file is truncated or corrupt');
    const expected = 'expected the JSON of the tiktoken or js-tiktoken npm package';
    if (typeof obj?.bpe_ranks !== 'string') throw new UserError(`${path}: no "bpe_ranks" string`, expected);
    const special = obj.special_tokens ?? {};
    if (typeof special !== 'object' || Array.isArray(special)) throw new UserError(`${path}: "special_tokens" is not an object of token -> id`, expected);
    if (obj.pat_str !== undefined && typeof obj.pat_str !== 'string') throw new UserError(`${path}: "pat_str" is not a string`, expected);
    return { tokenBytes: parseCompressedRanks(obj.bpe_ranks, path), pattern: obj.pat_str, specialTokens: special };
  }
  return { tokenBytes: parseTiktokenRanks(text, path), specialTokens: {} };
}

/** The BPE vocabulary of a rank file: ids are ranks, merges derived from the ranks, whole pieces first. */
export function vocabFromRanks(tokenBytes: Uint8Array[]): BPEVocab {
  const byteToId = new Int32Array(256).fill(-1);
  for (let id = 0; id < tokenBytes.length; id++) if (tokenBytes[id].length === 1 && byteToId[tokenBytes[id][0]] < 0) byteToId[tokenBytes[id][0]] = id;
  const missing = [...byteToId].findIndex((x) => x < 0);
  if (missing >= 0) throw new UserError(`the ranks have no token for the byte 0x${missing.toString(16)}`, 'a byte-level BPE vocabulary needs all 256 single bytes');
  return { tokenBytes, byteToId, merges: mergesFromRanks(tokenBytes), wholePieceFirst: true };
}

/** Lines "<base64> <rank>" of a vocabulary (what .tiktoken files hold). */
export function formatTiktokenRanks(tokenBytes: Uint8Array[]): string {
  const lines: string[] = [];
  for (let id = 0; id < tokenBytes.length; id++) {
    if (tokenBytes[id].length > 0) lines.push(`${Buffer.from(tokenBytes[id]).toString('base64')} ${id}`);
  }
  return lines.join('\n') + '\n';
}
