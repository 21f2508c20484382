// Hugging Face files <-> tokenizer parts: tokenizer.json (the `tokenizers` library's format), tokenizer_config.json
// (transformers: special token names and the Jinja chat template), and GPT-2's vocab.json + merges.txt. This module
// knows JSON layouts and the byte-to-character map; encoding is bpe.ts.
//
// Byte-level BPE stores each token's bytes as printable characters: GPT-2's bytes_to_unicode
// (github.com/openai/gpt-2, src/encoder.py) maps the 188 printable bytes to themselves and the other 68 to U+0100...
// Merges come in two published forms: "a b" strings (all tokenizers versions, GPT-2 merges.txt) and ["a", "b"] pairs
// (tokenizers >= 0.20, which allows spaces inside tokens). We read both and write strings: a byte-level token never
// holds a space (the space byte is "Ġ"), and every version of tokenizers reads them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readFileChecked, readJson, writeJsonAtomic } from '../util/fsx.js';
import { MAX_UNUSED_IDS, NO_BYTES, PairTable, type BPEVocab } from './bpe.js';
import { CHAT_TEMPLATE_JINJA } from './chat.js';
import { GPT2_PATTERN } from './pretokenize.js';
import { isSentencePieceBpe, sentencePieceVocab, type SentencePieceInfo } from './sentencepiece.js';

export interface TokenizerParts {
  vocab: BPEVocab;
  pattern: string; // pre-tokenizer regex, in the published (Rust/Oniguruma) syntax
  specialTokens: Record<string, number>;
  normalization?: 'NFC' | 'NFKC' | 'NFD' | 'NFKD';
  // from tokenizer_config.json (absent: chatwright's own chat template and special-token names)
  chatTemplate?: string; // Jinja, rendered with @huggingface/jinja
  names?: { bos?: string | null; eos?: string | null; pad?: string | null }; // which added tokens play these roles
  addBos?: boolean; // the tokenizer puts bos before every encoded text (add_bos_token, or a post-processor that does)
  stopIds?: number[]; // generation_config.json's eos_token_id: what else ends a turn
  kind?: 'byte-level' | 'sentencepiece'; // absent: byte-level
  spm?: SentencePieceInfo; // kind 'sentencepiece': synthetic byte chains and where ▁ is prepended
  // the files as they were read, written back unchanged by save() (a foreign tokenizer keeps its post-processor,
  // decoder and config keys that chatwright does not model)
  source?: { tokenizerJson: object; tokenizerConfig?: object; generationConfig?: object };
  file?: string; // the file it was read from, named in errors
}

// ---------------------------------------------------------------------------------------------------------------------
// the byte <-> character map

function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const out = new Array<string>(256);
  for (const b of bs) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  return out;
}
const BYTE_CHAR = bytesToUnicode();
const CHAR_BYTE = new Map(BYTE_CHAR.map((c, b) => [c, b]));

export function bytesToToken(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += BYTE_CHAR[b[i]];
  return s;
}

export function tokenToBytes(s: string, where: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = CHAR_BYTE.get(s[i]);
    if (b === undefined) throw new UserError(`${where}: token ${JSON.stringify(s)} has a character outside the byte-level alphabet`, 'only byte-level BPE tokenizers (GPT-2 style) are supported');
    out[i] = b;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// reading

/** Build a BPE vocabulary from a token -> id map and merges (priority = position in the list). */
export function vocabFromMerges(vocab: Record<string, number>, merges: unknown[], where: string, wholePieceFirst: boolean): BPEVocab {
  if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) throw new UserError(`${where}: the vocabulary is missing`, 'the file is truncated or not a BPE tokenizer');
  if (!Array.isArray(merges)) throw new UserError(`${where}: the merges are missing`, 'the file is truncated or not a BPE tokenizer');
  const tokenBytes: Uint8Array[] = [];
  const idOf = new Map<string, number>();
  const entries = Object.entries(vocab);
  const limit = entries.length + MAX_UNUSED_IDS;
  for (const [tok, id] of entries) {
    if (!Number.isInteger(id) || id < 0 || id >= limit) {
      throw new UserError(`${where}: token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}; the ${entries.length} tokens' ids must be whole numbers below ${limit}`, 'the file is corrupt');
    }
    if (tokenBytes[id] !== undefined) {
      const other = [...idOf].find(([, i]) => i === id)![0];
      throw new UserError(`${where}: tokens ${JSON.stringify(other)} and ${JSON.stringify(tok)} share id ${id}`, 'the file is corrupt');
    }
    tokenBytes[id] = tokenToBytes(tok, where);
    idOf.set(tok, id);
  }
  for (let i = 0; i < tokenBytes.length; i++) if (tokenBytes[i] === undefined) tokenBytes[i] = NO_BYTES;
  const byteToId = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const id = idOf.get(BYTE_CHAR[b]);
    if (id === undefined) throw new UserError(`${where}: the vocabulary has no token for the byte 0x${b.toString(16)}`, 'only byte-level BPE tokenizers (GPT-2 style) are supported; is the file truncated?');
    byteToId[b] = id;
  }
  const table = new PairTable(merges.length);
  for (let i = 0; i < merges.length; i++) {
    const m = merges[i];
    let a: unknown, b: unknown;
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length !== 2) throw new UserError(`${where}: merge ${i} "${m}" is not two tokens separated by one space`, 'the file is corrupt');
      [a, b] = parts;
    } else if (Array.isArray(m) && m.length === 2) [a, b] = m;
    else throw new UserError(`${where}: merge ${i} is neither "a b" nor ["a", "b"]: ${JSON.stringify(m)}`, 'the file is corrupt');
    const ia = idOf.get(a as string), ib = idOf.get(b as string), ic = idOf.get((a as string) + (b as string));
    if (ia === undefined || ib === undefined || ic === undefined) {
      throw new UserError(`${where}: merge ${i} ${JSON.stringify([a, b])} uses or makes a token that is not in the vocabulary`, 'the vocabulary and merges do not belong together, or the file is truncated');
    }
    table.set(ia, ib, i, ic);
  }
  return { tokenBytes, byteToId, merges: table, wholePieceFirst };
}

function findSplitPattern(pre: any, where: string): string | null {
  if (!pre) return null;
  if (pre.type === 'Sequence') {
    for (const p of Array.isArray(pre.pretokenizers) ? pre.pretokenizers : []) {
      const r = findSplitPattern(p, where);
      if (r) return r;
    }
    return null;
  }
  if (pre.type === 'Split') {
    if (typeof pre.pattern?.Regex === 'string') return pre.pattern.Regex;
    if (typeof pre.pattern?.String === 'string') return pre.pattern.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    throw new UserError(`${where}: a Split pre-tokenizer without a pattern`, 'the file is corrupt');
  }
  if (pre.type === 'ByteLevel' && pre.use_regex !== false) return GPT2_PATTERN;
  return null;
}

function hasByteLevel(x: any): boolean {
  if (!x) return false;
  if (x.type === 'ByteLevel') return true;
  if (x.type === 'Sequence') {
    const list = x.pretokenizers ?? x.decoders;
    return Array.isArray(list) && list.some(hasByteLevel);
  }
  return false;
}

/** Parse a tokenizer.json object (already JSON-parsed). */
export function parseTokenizerJson(obj: any, where: string): TokenizerParts {
  if (!obj || typeof obj !== 'object' || !obj.model) throw new UserError(`${where}: no "model" section`, 'expected a Hugging Face tokenizer.json');
  const model = obj.model;
  if (model.type !== undefined && model.type !== 'BPE') {
    throw new UserError(`${where}: model type ${model.type} is not BPE`, 'byte-level BPE (GPT-2, Llama 3, Qwen) and SentencePiece-style BPE (Llama 2, TinyLlama) tokenizers are supported');
  }
  const specialTokens: Record<string, number> = {};
  const added = obj.added_tokens ?? [];
  if (!Array.isArray(added)) throw new UserError(`${where}: "added_tokens" is not a list`, 'the file is corrupt');
  for (const t of added) {
    if (typeof t?.content !== 'string' || !Number.isInteger(t?.id)) throw new UserError(`${where}: an added token without content or id: ${JSON.stringify(t)?.slice(0, 80)}`, 'the file is corrupt');
    if (t.content in specialTokens) throw new UserError(`${where}: the added token ${JSON.stringify(t.content)} appears twice`, 'the file is corrupt');
    specialTokens[t.content] = t.id; // ids are checked against the vocabulary by the Tokenizer
  }
  if (!hasByteLevel(obj.pre_tokenizer) && !hasByteLevel(obj.decoder)) {
    if (!isSentencePieceBpe(obj)) {
      throw new UserError(`${where}: neither a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder) nor SentencePiece-style BPE (no byte fallback or ▁)`, 'byte-level BPE and SentencePiece-style BPE tokenizers are supported');
    }
    const { vocab, spm } = sentencePieceVocab(obj, where);
    // written back as read: tokenizerJson() below writes byte-level files only
    return { vocab, pattern: '', specialTokens, kind: 'sentencepiece', spm, source: { tokenizerJson: obj } };
  }
  const vocab = vocabFromMerges(model.vocab, model.merges, where, model.ignore_merges === true);
  let normalization: TokenizerParts['normalization'];
  const norm = obj.normalizer;
  if (norm) {
    const types = norm.type === 'Sequence' ? (Array.isArray(norm.normalizers) ? norm.normalizers : []).map((n: any) => n?.type) : [norm.type];
    for (const t of types) {
      if (['NFC', 'NFKC', 'NFD', 'NFKD'].includes(t)) normalization = t;
      else throw new UserError(`${where}: the ${t} normalizer is not supported`, 'byte-level tokenizers normally have no normalizer, or NFC');
    }
  }
  return { vocab, pattern: findSplitPattern(obj.pre_tokenizer, where) ?? GPT2_PATTERN, specialTokens, normalization, file: where };
}

export function readTokenizerJson(path: string): TokenizerParts {
  const hint = 'train one with `chatwright tokenizer train --out DIR`, or point at a directory with tokenizer.json';
  return parseTokenizerJson(readJson(path, 'tokenizer file', hint), path);
}

// A special-token name in tokenizer_config.json: a string, an AddedToken object {content, ...}, or null.
function tokenName(v: unknown): string | null | undefined {
  if (v === null) return null;
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as any).content === 'string') return (v as any).content;
  return undefined;
}

// Whether tokenizer.json's post-processor puts a special token before a single text (Llama 3's TemplateProcessing).
function postProcessorBos(pp: any): string | undefined {
  if (!pp) return undefined;
  if (pp.type === 'Sequence') for (const p of pp.processors ?? []) {
    const r = postProcessorBos(p);
    if (r) return r;
  }
  if (pp.type === 'TemplateProcessing') return pp.single?.[0]?.SpecialToken?.id;
  return undefined;
}

/**
 * tokenizer.json, with tokenizer_config.json (chat template, special-token roles, add_bos_token) and
 * generation_config.json (eos ids that end a turn) when the folder has them, as a model from the Hub ships them.
 * chatwright's own tokenizer_config.json (its own template) adds nothing: the built-in template and names apply.
 */
export function readTokenizerDir(dir: string): TokenizerParts {
  const path = join(dir, 'tokenizer.json');
  const hint = 'train one with `chatwright tokenizer train --out DIR`, or point at a directory with tokenizer.json';
  const tokenizerJson = readJson(path, 'tokenizer file', hint);
  const parts = parseTokenizerJson(tokenizerJson, path);
  const cfgPath = join(dir, 'tokenizer_config.json'), genPath = join(dir, 'generation_config.json');
  const cfg = existsSync(cfgPath) ? readJson(cfgPath, 'tokenizer config') : undefined;
  const gen = existsSync(genPath) ? readJson(genPath, 'generation config') : undefined;
  let template: unknown = cfg?.chat_template;
  if (Array.isArray(template)) template = (template.find((t: any) => t?.name === 'default') ?? template[0])?.template;
  if (cfg && template !== CHAT_TEMPLATE_JINJA) {
    if (typeof template === 'string') parts.chatTemplate = template;
    parts.names = { bos: tokenName(cfg.bos_token), eos: tokenName(cfg.eos_token), pad: tokenName(cfg.pad_token) };
    const ppBos = postProcessorBos(tokenizerJson.post_processor);
    if (typeof cfg.add_bos_token === 'boolean') parts.addBos = cfg.add_bos_token;
    else if (ppBos !== undefined) parts.addBos = ppBos === parts.names.bos;
    else if (parts.kind !== 'sentencepiece') parts.addBos = false;
    parts.source = { tokenizerJson, tokenizerConfig: cfg, ...(gen ? { generationConfig: gen } : {}) };
  } else if (parts.kind === 'sentencepiece' || gen) {
    parts.source = { tokenizerJson, ...(cfg ? { tokenizerConfig: cfg } : {}), ...(gen ? { generationConfig: gen } : {}) };
  }
  if (gen) {
    const eos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [gen.eos_token_id];
    const ids = eos.filter((x: unknown) => Number.isInteger(x));
    if (ids.length > 0) parts.stopIds = ids;
  }
  return parts;
}

/** GPT-2's vocab.json (token -> id) and merges.txt ("#version" line, then "a b" lines). */
export function readGpt2Files(vocabPath: string, mergesPath: string): TokenizerParts {
  const vocab = readJson(vocabPath, 'GPT-2 vocab.json');
  const lines = readFileChecked(mergesPath, 'GPT-2 merges.txt').toString('utf8').split('\n').filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
  const specialTokens: Record<string, number> = {};
  if (typeof vocab['<|endoftext|>'] === 'number') specialTokens['<|endoftext|>'] = vocab['<|endoftext|>'];
  // GPT-2 merges predate ignore_merges: pure merges.
  const where = `${vocabPath} + ${mergesPath}`;
  return { vocab: vocabFromMerges(vocab, lines, where, false), pattern: GPT2_PATTERN, specialTokens, file: where };
}

// ---------------------------------------------------------------------------------------------------------------------
// writing

/** Merges in priority order as "a b"; ties (several splits of one token) by left id, then right id. */
export function mergeList(parts: TokenizerParts): string[] {
  const entries = parts.vocab.merges.entries();
  entries.sort((x, y) => x[2] - y[2] || x[0] - y[0] || x[1] - y[1]);
  const tb = parts.vocab.tokenBytes;
  return entries.map(([a, b]) => `${bytesToToken(tb[a])} ${bytesToToken(tb[b])}`);
}

export function tokenizerJson(parts: TokenizerParts): object {
  const vocab: Record<string, number> = {};
  const specialIds = new Set(Object.values(parts.specialTokens));
  parts.vocab.tokenBytes.forEach((b, id) => {
    if (b.length > 0 && !specialIds.has(id)) vocab[bytesToToken(b)] = id;
  });
  const added = Object.entries(parts.specialTokens)
    .sort((a, b) => a[1] - b[1])
    .map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: parts.normalization ? { type: parts.normalization } : null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: parts.pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: parts.vocab.wholePieceFirst,
      vocab,
      merges: mergeList(parts),
    },
  };
}

export function tokenizerConfigJson(parts: TokenizerParts, names: { bos?: string; eos?: string; pad?: string }): object {
  const decoderEntries: Record<string, object> = {};
  for (const [content, id] of Object.entries(parts.specialTokens).sort((a, b) => a[1] - b[1])) {
    decoderEntries[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: names.bos ?? null,
    eos_token: names.eos ?? null,
    pad_token: names.pad ?? null,
    unk_token: null,
    add_bos_token: parts.chatTemplate === undefined ? false : parts.addBos ?? false, // our own template writes bos itself
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: decoderEntries,
    chat_template: parts.chatTemplate ?? CHAT_TEMPLATE_JINJA,
  };
}

/** tokenizer.json + tokenizer_config.json into dir, each written atomically (a loaded foreign tokenizer: as read). */
export function writeTokenizerDir(dir: string, parts: TokenizerParts, names: { bos?: string; eos?: string; pad?: string }): void {
  if (parts.source) {
    writeJsonAtomic(join(dir, 'tokenizer.json'), parts.source.tokenizerJson);
    if (parts.source.tokenizerConfig) writeJsonAtomic(join(dir, 'tokenizer_config.json'), parts.source.tokenizerConfig);
    if (parts.source.generationConfig) writeJsonAtomic(join(dir, 'generation_config.json'), parts.source.generationConfig);
    return;
  }
  writeJsonAtomic(join(dir, 'tokenizer.json'), tokenizerJson(parts));
  writeJsonAtomic(join(dir, 'tokenizer_config.json'), tokenizerConfigJson(parts, names));
}
