// SentencePiece-style BPE as Hugging Face's tokenizer.json holds it for Llama 2, TinyLlama and Mistral: spaces become
// "▁" (U+2581) and one "▁" is put before the text (the Prepend normalizer of older files, the Metaspace pre-tokenizer
// with prepend_scheme of newer ones); there is no pre-splitting; merges join vocabulary strings, starting from single
// characters; a character outside the vocabulary falls back to its UTF-8 bytes as the tokens "<0x00>".."<0xFF>".
//
// The byte-pair encoder (bpe.ts) starts from bytes, so characters are built from bytes first: every multi-byte
// character of the vocabulary gets a chain of merges of its bytes (E6 98 -> "E6 98", then + 8E -> "明") ranked before
// every real merge, through synthetic ids past the vocabulary. UTF-8 is self-synchronising, so such a chain never
// crosses a character boundary; a chain left unfinished (a character outside the vocabulary that shares a prefix with
// one inside) is expanded back to its byte tokens by `expandSynthetic`. Real merges never touch byte tokens or synthetic
// ids, so the result is Hugging Face's BPE (`tokenizers` models/bpe: lowest rank first, leftmost on a tie).
import { UserError } from '../util/errors.js';
import { PairTable, type BPEVocab } from './bpe.js';

export const METASPACE = '\u2581';
const utf8 = new TextEncoder();

export interface SentencePieceInfo {
  nReal: number; // ids below this are the vocabulary; ids from it up are synthetic byte prefixes
  synthetic: Int32Array[]; // synthetic id - nReal -> the byte-token ids it stands for
  prepend: 'every-segment' | 'first' | 'never'; // where "▁" is put: each text between special tokens, the input's start
}

/** Whether a tokenizer.json is SentencePiece-style BPE (byte fallback and/or the ▁ metaspace). */
export function isSentencePieceBpe(obj: any): boolean {
  const m = obj?.model;
  if (m?.type !== 'BPE') return false;
  const json = JSON.stringify([obj.normalizer, obj.pre_tokenizer]);
  return m.byte_fallback === true || json.includes(METASPACE);
}

function prependScheme(obj: any, where: string): SentencePieceInfo['prepend'] {
  const norms = obj.normalizer?.type === 'Sequence' ? obj.normalizer.normalizers ?? [] : obj.normalizer ? [obj.normalizer] : [];
  const pre = obj.pre_tokenizer?.type === 'Sequence' ? obj.pre_tokenizer.pretokenizers ?? [] : obj.pre_tokenizer ? [obj.pre_tokenizer] : [];
  for (const n of norms) {
    if (n.type === 'Prepend' && n.prepend === METASPACE) continue;
    if (n.type === 'Replace' && n.pattern?.String === ' ' && n.content === METASPACE) continue;
    throw new UserError(`${where}: the ${n.type} normalizer is not supported in a SentencePiece-style tokenizer`, 'Llama 2 / TinyLlama style files are supported');
  }
  for (const p of pre) {
    if (p.type !== 'Metaspace') throw new UserError(`${where}: the ${p.type} pre-tokenizer is not supported in a SentencePiece-style tokenizer`);
    if (p.split === true) throw new UserError(`${where}: a Metaspace pre-tokenizer that splits on spaces is not supported`);
    const scheme = p.prepend_scheme ?? (p.add_prefix_space === false ? 'never' : 'always');
    return scheme === 'never' ? 'never' : scheme === 'first' ? 'first' : 'every-segment';
  }
  return norms.some((n: any) => n.type === 'Prepend') ? 'every-segment' : 'never';
}

/** The vocabulary of a SentencePiece-style tokenizer.json (model section), with the synthetic byte chains. */
export function sentencePieceVocab(obj: any, where: string): { vocab: BPEVocab; spm: SentencePieceInfo } {
  const model = obj.model;
  const entries = Object.entries<number>(model.vocab ?? {});
  if (entries.length === 0) throw new UserError(`${where}: the vocabulary is missing`, 'the file is truncated');
  const idOf = new Map<string, number>(entries);
  let nReal = 0;
  for (const [, id] of entries) nReal = Math.max(nReal, id + 1);
  for (const t of obj.added_tokens ?? []) nReal = Math.max(nReal, t.id + 1);
  const tokenBytes: Uint8Array[] = new Array(nReal).fill(new Uint8Array(0));
  const byteToken = new Int32Array(256).fill(-1);
  for (const [tok, id] of entries) {
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
    if (m) {
      byteToken[parseInt(m[1], 16)] = id;
      tokenBytes[id] = Uint8Array.of(parseInt(m[1], 16));
    } else {
      tokenBytes[id] = utf8.encode(tok.replaceAll(METASPACE, ' '));
    }
  }
  if (model.byte_fallback && byteToken.some((id) => id < 0)) {
    throw new UserError(`${where}: byte_fallback is on but the vocabulary lacks some <0xXX> byte tokens`, 'the file is truncated or corrupt');
  }
  // the id each byte starts as: the single-byte character's token, else its byte token
  const byteToId = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const ch = b < 0x80 ? idOf.get(String.fromCharCode(b)) : undefined;
    byteToId[b] = ch ?? byteToken[b];
    if (byteToId[b] < 0) throw new UserError(`${where}: no token for the byte 0x${b.toString(16)} and no byte fallback`, 'only byte-fallback SentencePiece BPE is supported');
  }
  // synthetic chains for multi-byte characters of the vocabulary, ranked before every real merge
  const merges = new PairTable(entries.length + (model.merges?.length ?? 0));
  const synthetic: Int32Array[] = [];
  const prefixId = new Map<string, number>();
  let prio = 0;
  for (const [tok, id] of entries) {
    if ([...tok].length !== 1) continue;
    const bytes = utf8.encode(tok);
    if (bytes.length < 2) continue;
    let cur = byteToId[bytes[0]];
    for (let k = 1; k < bytes.length; k++) {
      const last = k === bytes.length - 1;
      const key = Array.from(bytes.subarray(0, k + 1)).join(',');
      let next = last ? id : prefixId.get(key);
      if (next === undefined) {
        next = nReal + synthetic.length;
        synthetic.push(Int32Array.from(bytes.subarray(0, k + 1), (b) => byteToken[b]));
        tokenBytes[next] = bytes.slice(0, k + 1);
        prefixId.set(key, next);
      }
      merges.set(cur, byteToId[bytes[k]], prio++, next);
      cur = next;
    }
  }
  const list: unknown[] = model.merges ?? [];
  for (let i = 0; i < list.length; i++) {
    const m = list[i];
    const [a, b] = typeof m === 'string' ? splitMerge(m, i, where) : Array.isArray(m) && m.length === 2 ? m as [string, string] : [undefined, undefined];
    const ia = idOf.get(a as string), ib = idOf.get(b as string), ic = idOf.get((a as string) + (b as string));
    if (ia === undefined || ib === undefined || ic === undefined) {
      throw new UserError(`${where}: merge ${i} ${JSON.stringify(m)} uses or makes a token that is not in the vocabulary`, 'the vocabulary and merges do not belong together, or the file is truncated');
    }
    merges.set(ia, ib, prio + i, ic);
  }
  return {
    vocab: { tokenBytes, byteToId, merges, wholePieceFirst: model.ignore_merges === true },
    spm: { nReal, synthetic, prepend: prependScheme(obj, where) },
  };
}

// "a b": the first space splits (a SentencePiece token never holds a plain space: spaces are ▁)
function splitMerge(m: string, i: number, where: string): [string, string] {
  const k = m.indexOf(' ');
  if (k <= 0 || k === m.length - 1) throw new UserError(`${where}: merge ${i} "${m}" is not two tokens separated by a space`, 'the file is corrupt');
  return [m.slice(0, k), m.slice(k + 1)];
}

/** Text as the encoder sees it: spaces as ▁, and one ▁ in front when the scheme asks for it here. */
export function metaspace(text: string, prepend: boolean): string {
  const s = text.replaceAll(' ', METASPACE);
  return prepend && s.length > 0 ? METASPACE + s : s;
}

/** Replace synthetic ids (unfinished byte chains) by the byte tokens they stand for, in place order. */
export function expandSynthetic(ids: number[], from: number, spm: SentencePieceInfo): void {
  let has = false;
  for (let i = from; i < ids.length; i++) if (ids[i] >= spm.nReal) has = true;
  if (!has) return;
  const tail = ids.splice(from);
  for (const id of tail) {
    if (id < spm.nReal) ids.push(id);
    else for (const b of spm.synthetic[id - spm.nReal]) ids.push(b);
  }
}
