// The Tokenizer: text <-> token ids, special tokens, the chat template, and its files. It composes pre-splitting
// (pretokenize.ts), byte-pair merging (bpe.ts), the chat template (chat.ts), streaming decode (stream.ts) and the file
// formats (hf.ts, tiktoken.ts). It knows nothing about models.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { BytePairEncoder, MAX_UNUSED_IDS, type BPEVocab } from './bpe.js';
import { CHAT_TEMPLATE_JINJA, renderConversation, renderForCompletion, type Message } from './chat.js';
import { readGpt2Files, readTokenizerDir, writeTokenizerDir, type TokenizerParts } from './hf.js';
import { expandSynthetic, metaspace } from './sentencepiece.js';
import { renderWithTemplate } from './template.js';
import { toJsRegex } from './pretokenize.js';
import { SPECIAL_ALIASES, SPECIAL_TOKENS, type SpecialToken } from './special.js';
import { createStreamDecoder, type StreamDecoder } from './stream.js';
import { readRankFile, vocabFromRanks } from './tiktoken.js';

const utf8 = new TextEncoder();

export class Tokenizer {
  readonly bpe: BytePairEncoder;
  readonly pattern: string; // pre-tokenizer regex in the published syntax (what tokenizer.json holds)
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly vocabSize: number; // including special tokens
  readonly bos: number; readonly eos: number; readonly system: number; readonly user: number;
  readonly assistant: number; readonly eot: number; readonly pad: number; // -1 where the vocabulary has none
  private readonly re: RegExp;
  private readonly parts: TokenizerParts;
  readonly file: string | undefined; // the file it was read from, for errors
  private readonly decodeTable: Uint8Array[]; // id -> bytes, special tokens as their text
  private readonly specialOf = new Map<number, string>();
  private allSpecialRe: RegExp | null = null;

  constructor(parts: TokenizerParts) {
    const where = parts.file ?? 'tokenizer';
    this.file = parts.file;
    this.parts = parts;
    this.pattern = parts.pattern;
    try {
      this.re = toJsRegex(parts.pattern);
      // V8 compiles a regex at its first use: use it now, so "too large" or a stack overflow in it fails here
      this.re.exec('Hello, 世界 123\n');
      this.re.lastIndex = 0;
    } catch (e) {
      throw new UserError(`${where}: ${(e as Error).message.split('\n')[0]}`, 'the pre-tokenizer pattern of the file is corrupt');
    }
    this.specialTokens = new Map(Object.entries(parts.specialTokens));
    checkSpecialIds(this.specialTokens, parts.vocab.tokenBytes, where);
    // Special tokens are not reachable through BPE: the encoder sees no bytes for them. A SentencePiece vocabulary
    // carries synthetic ids past its end (sentencepiece.ts): the encoder needs them, the vocabulary does not count them.
    const bpeBytes = parts.vocab.tokenBytes.slice();
    const nReal = parts.spm ? parts.spm.nReal : parts.vocab.tokenBytes.length;
    this.decodeTable = parts.vocab.tokenBytes.slice(0, nReal);
    let size = nReal;
    for (const [text, id] of this.specialTokens) {
      this.specialOf.set(id, text);
      bpeBytes[id] = new Uint8Array(0);
      this.decodeTable[id] = utf8.encode(text);
      size = Math.max(size, id + 1);
    }
    for (let i = 0; i < Math.max(size, bpeBytes.length); i++) {
      if (bpeBytes[i] === undefined) bpeBytes[i] = new Uint8Array(0);
      if (i >= size) continue;
      if (this.decodeTable[i] === undefined) this.decodeTable[i] = new Uint8Array(0);
    }
    this.bpe = new BytePairEncoder({ ...parts.vocab, tokenBytes: bpeBytes });
    this.vocabSize = size;
    const named: Partial<Record<SpecialToken, string | null | undefined>> = {
      '<|bos|>': parts.names?.bos, '<|eos|>': parts.names?.eos, '<|pad|>': parts.names?.pad,
    };
    const idFor = (name: SpecialToken): number => {
      const given = named[name];
      if (given === null) return -1; // tokenizer_config.json says the role has no token (Qwen's bos)
      if (given !== undefined) return this.specialTokens.get(given) ?? -1;
      for (const alias of SPECIAL_ALIASES[name]) {
        const id = this.specialTokens.get(alias);
        if (id !== undefined) return id;
      }
      return -1;
    };
    this.bos = idFor('<|bos|>');
    this.eos = idFor('<|eos|>');
    this.system = idFor('<|system|>');
    this.user = idFor('<|user|>');
    this.assistant = idFor('<|assistant|>');
    this.eot = idFor('<|eot|>');
    this.pad = idFor('<|pad|>');
  }

  // ---- files -------------------------------------------------------------------------------------------------------

  /** tokenizer.json in dir (a tokenizer or model directory), or GPT-2's vocab.json + merges.txt. */
  static load(dir: string): Tokenizer {
    if (existsSync(join(dir, 'tokenizer.json'))) return new Tokenizer(readTokenizerDir(dir));
    if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
      return new Tokenizer(readGpt2Files(join(dir, 'vocab.json'), join(dir, 'merges.txt')));
    }
    throw new UserError(`no tokenizer.json (or vocab.json + merges.txt) in ${dir}`, 'train one with `chatwright tokenizer train --out DIR`');
  }

  /** A tiktoken rank file (.tiktoken, or the JSON of the tiktoken / js-tiktoken npm packages). */
  static fromTiktoken(path: string, opts: { pattern?: string; specialTokens?: Record<string, number> } = {}): Tokenizer {
    const rf = readRankFile(path);
    const pattern = opts.pattern ?? rf.pattern;
    if (!pattern) throw new UserError(`${path} carries no pre-tokenizer pattern`, 'pass one, e.g. CL100K_PATTERN from src/tokenizer/pretokenize.ts');
    let vocab: BPEVocab;
    try {
      vocab = vocabFromRanks(rf.tokenBytes);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${path}: ${e.message}`, e.hint);
      throw e;
    }
    return new Tokenizer({ vocab, pattern, specialTokens: opts.specialTokens ?? rf.specialTokens, file: path });
  }

  static fromVocab(vocab: BPEVocab, pattern: string, specialTokens: Record<string, number>): Tokenizer {
    return new Tokenizer({ vocab, pattern, specialTokens });
  }

  /** tokenizer.json + tokenizer_config.json (with the chat template), written atomically. */
  save(dir: string): void {
    const name = (id: number) => (id >= 0 ? this.specialOf.get(id) : undefined);
    writeTokenizerDir(dir, this.parts, { bos: name(this.bos), eos: name(this.eos), pad: name(this.pad) });
  }

  /** The Jinja chat template: the model's own (tokenizer_config.json, GGUF) or chatwright's. */
  get chatTemplate(): string {
    return this.parts.chatTemplate ?? CHAT_TEMPLATE_JINJA;
  }

  /** Whether a template is chatwright's own (rendered by chat.ts, not by Jinja). */
  static isOwnTemplate(template: string): boolean {
    return template === CHAT_TEMPLATE_JINJA;
  }

  /** Whether a prompt starts with bos: the tokenizer's add_bos_token, else yes when it has one. */
  get addBos(): boolean {
    return this.bos >= 0 && (this.parts.addBos ?? true);
  }

  /** The parts this tokenizer was built from (for writers of other formats). */
  toParts(): TokenizerParts {
    return this.parts;
  }

  // ---- encoding ----------------------------------------------------------------------------------------------------

  /** Text to ids; special tokens are plain text. */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    return this.encodeSegment(text, out, true);
  }

  // One text between special tokens; `first`: it starts the input (SentencePiece's prepend_scheme "first").
  private encodeSegment(text: string, out: number[], first: boolean): number[] {
    const spm = this.parts.spm;
    if (spm) {
      if (text.length === 0) return out;
      const from = out.length;
      this.bpe.encodePiece(metaspace(text, spm.prepend === 'every-segment' || (spm.prepend === 'first' && first)), out);
      expandSynthetic(out, from, spm);
      return out;
    }
    if (this.parts.normalization) text = text.normalize(this.parts.normalization);
    const re = this.re;
    re.lastIndex = 0;
    const pieces = text.match(re);
    if (pieces !== null) {
      let covered = 0;
      for (let i = 0; i < pieces.length; i++) covered += pieces[i].length;
      if (covered === text.length) {
        for (let i = 0; i < pieces.length; i++) this.bpe.encodePiece(pieces[i], out);
        return out;
      }
    }
    // A pattern that does not cover every character (not the published ones): the gaps are pieces of their own, as
    // in Hugging Face's Split with behavior "Isolated".
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index > last) this.bpe.encodePiece(text.slice(last, m.index), out);
      this.bpe.encodePiece(m[0], out);
      last = m.index + m[0].length;
    }
    if (last < text.length) this.bpe.encodePiece(text.slice(last), out);
    return out;
  }

  /** Text to ids. Special tokens in the text stay plain text unless allowed ('all' or a set of their strings). */
  encode(text: string, opts: { allowedSpecial?: 'all' | Set<string> } = {}): number[] {
    const allowed = opts.allowedSpecial;
    if (!allowed || this.specialTokens.size === 0) return this.encodeOrdinary(text);
    let re: RegExp;
    if (allowed === 'all') {
      this.allSpecialRe ??= specialRegex([...this.specialTokens.keys()]);
      re = this.allSpecialRe;
    } else {
      for (const s of allowed) if (!this.specialTokens.has(s)) throw new UserError(`"${s}" is not a special token of this tokenizer`, `special tokens: ${[...this.specialTokens.keys()].join(' ')}`);
      if (allowed.size === 0) return this.encodeOrdinary(text);
      re = specialRegex([...allowed]);
    }
    const out: number[] = [];
    let last = 0;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > last) this.encodeSegment(text.slice(last, m.index), out, last === 0);
      out.push(this.specialTokens.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < text.length) this.encodeSegment(text.slice(last), out, last === 0);
    return out;
  }

  // ---- decoding ----------------------------------------------------------------------------------------------------

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    const table = this.decodeTable;
    for (let i = 0; i < ids.length; i++) {
      const b = table[ids[i]];
      if (b === undefined) throw new UserError(`token id ${ids[i]} is outside the vocabulary (0..${table.length - 1})`);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = table[ids[i]];
      out.set(b, o);
      o += b.length;
    }
    return out;
  }

  /** Ids to text; special tokens appear as their text; invalid UTF-8 (a cut-off character) becomes U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    const text = Buffer.from(this.decodeBytes(ids).buffer).toString('utf8');
    // SentencePiece: the ▁ put before the text decodes to a space, which the decoder strips (its Strip step)
    return this.parts.spm && text.startsWith(' ') ? text.slice(1) : text;
  }

  /** The bytes of one token (special tokens: their text). */
  tokenBytes(id: number): Uint8Array {
    const b = this.decodeTable[id];
    if (b === undefined) throw new UserError(`token id ${id} is outside the vocabulary (0..${this.decodeTable.length - 1})`);
    return b;
  }

  /** The special token's text if id is one, else undefined. */
  specialName(id: number): string | undefined {
    return this.specialOf.get(id);
  }

  streamDecoder(): StreamDecoder {
    const d = createStreamDecoder((id) => this.tokenBytes(id));
    if (!this.parts.spm) return d;
    let started = false; // as decode(): one leading space of the stream is the prepended ▁
    const strip = (s: string) => {
      if (started || s.length === 0) return s;
      started = true;
      return s.startsWith(' ') ? s.slice(1) : s;
    };
    return { push: (id) => strip(d.push(id)), flush: () => strip(d.flush()) };
  }

  /** The ids that end a turn: end of turn, end of text, and generation_config.json's (and `extra`) eos ids. */
  stopTokens(extra: readonly number[] = []): number[] {
    const ids = [this.eot, this.eos, ...(this.parts.stopIds ?? []), ...extra].filter((id) => id >= 0 && id < this.vocabSize);
    return [...new Set(ids)];
  }

  // ---- chat --------------------------------------------------------------------------------------------------------

  /** A conversation for training: ids and the mask of what the assistant says (and its end of turn). */
  render(messages: Message[]): { ids: number[]; mask: number[] } {
    if (this.parts.chatTemplate !== undefined) return renderWithTemplate(this, this.parts.chatTemplate, messages, 'train');
    return renderConversation(this, messages);
  }

  /** A conversation ending with a user message, up to where the assistant's answer starts. */
  renderForCompletion(messages: Message[]): number[] {
    if (this.parts.chatTemplate !== undefined) return renderWithTemplate(this, this.parts.chatTemplate, messages, 'generate').ids;
    return renderForCompletion(this, messages);
  }
}

// Special token ids, as read from a file: whole numbers, each used once, not far past the vocabulary (a corrupt id of
// 2^32 would otherwise size the tables), and not the id of an ordinary token with other bytes (a byte token taken by
// "<|eos|>" would make that byte unencodable). A special token listed in the vocabulary with its own text (GPT-2's
// <|endoftext|>) is fine.
function checkSpecialIds(special: ReadonlyMap<string, number>, tokenBytes: Uint8Array[], where: string): void {
  const limit = tokenBytes.length + special.size + MAX_UNUSED_IDS;
  const owner = new Map<number, string>();
  const hint = 'the tokenizer file is corrupt';
  for (const [text, id] of special) {
    if (!Number.isInteger(id) || id < 0 || id >= limit) {
      throw new UserError(`${where}: special token ${JSON.stringify(text)} has id ${JSON.stringify(id)}; ids of this vocabulary are whole numbers below ${limit}`, hint);
    }
    const other = owner.get(id);
    if (other !== undefined) throw new UserError(`${where}: special tokens ${JSON.stringify(other)} and ${JSON.stringify(text)} share id ${id}`, hint);
    owner.set(id, text);
    const b = tokenBytes[id];
    if (b !== undefined && b.length > 0 && Buffer.compare(Buffer.from(b), Buffer.from(utf8.encode(text))) !== 0) {
      throw new UserError(`${where}: special token ${JSON.stringify(text)} has id ${id}, the id of the ordinary token ${JSON.stringify(Buffer.from(b).toString('utf8'))}`, hint);
    }
  }
}

function specialRegex(tokens: string[]): RegExp {
  const sorted = [...tokens].sort((a, b) => b.length - a.length); // longest first, so a prefix never wins
  return new RegExp(sorted.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');
}

/** Our special tokens after `n` ids, in SPECIAL_TOKENS order. */
export function specialTokensFrom(n: number): Record<string, number> {
  return Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, n + i]));
}
