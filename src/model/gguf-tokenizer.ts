// Tokenizers <-> GGUF's tokenizer.ggml.* keys, as llama.cpp's src/llama-vocab.cpp reads them:
// - byte-level BPE (tokenizer.ggml.model "gpt2"): tokens in GPT-2's byte-to-character form, merges "a b" in priority
//   order, and the pre-tokenizer named by tokenizer.ggml.pre, one whose regex splits exactly like ours;
// - SentencePiece-style BPE (model "llama", Llama 2 / TinyLlama): tokens with ▁, <0xXX> byte tokens (type BYTE), and
//   scores instead of merges. llama.cpp merges the adjacent pair whose concatenation is the token of highest score,
//   leftmost on a tie, from single characters up, so a merge's rank becomes the score of the token it makes (score
//   -rank), and reading back, every split of a token into two tokens is a merge at that priority.
import { UserError } from '../util/errors.js';
import { Tokenizer, CL100K_PATTERN, GPT2_PATTERN, QWEN2_PATTERN } from '../tokenizer/index.js';
import { bytesToToken, mergeList, parseTokenizerJson, vocabFromMerges, type TokenizerParts } from '../tokenizer/hf.js';
import type { GgufFile, GgufValue } from './gguf.js';

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 }; // llama_token_type
const METASPACE = '\u2581';

// llama.cpp's pre-tokenizer types (src/llama-vocab.cpp) whose regex splits exactly like our patterns. "llama-bpe" also
// turns on ignore_merges (a piece that is a token is that token), "dbrx" is the same regex without it.
function preTokenizerType(parts: TokenizerParts): string {
  if (parts.pattern === CL100K_PATTERN) return parts.vocab.wholePieceFirst ? 'llama-bpe' : 'dbrx';
  if (parts.pattern === QWEN2_PATTERN && !parts.vocab.wholePieceFirst) return 'qwen2';
  if (parts.pattern === GPT2_PATTERN && !parts.vocab.wholePieceFirst) return 'gpt-2';
  throw new UserError('GGUF: the tokenizer\'s pre-tokenizer regex has no llama.cpp equivalent that splits the same way',
    `llama.cpp knows the GPT-2, GPT-4/Llama 3 and Qwen2 patterns; this one is ${JSON.stringify(parts.pattern).slice(0, 120)}`);
}

function patternOfPre(pre: string, what: string): { pattern: string; wholePieceFirst: boolean } {
  if (pre === 'llama-bpe' || pre === 'llama3' || pre === 'llama-v3' || pre === 'smollm') return { pattern: CL100K_PATTERN, wholePieceFirst: true };
  if (pre === 'dbrx' || pre === 'smaug-bpe') return { pattern: CL100K_PATTERN, wholePieceFirst: false };
  if (pre === 'qwen2' || pre === 'deepseek-r1-qwen') return { pattern: QWEN2_PATTERN, wholePieceFirst: false };
  if (pre === 'gpt-2' || pre === 'default') return { pattern: GPT2_PATTERN, wholePieceFirst: false };
  throw new UserError(`${what}: tokenizer.ggml.pre "${pre}" is not supported`, 'supported: llama-bpe, dbrx, qwen2, gpt-2, default');
}

export function tokenizerMetadata(tok: Tokenizer, vocabSize: number): [string, GgufValue][] {
  const parts = tok.toParts();
  if (tok.vocabSize > vocabSize) {
    throw new UserError(`GGUF: the tokenizer has ${tok.vocabSize} ids but the model's vocabulary only ${vocabSize}`, 'the tokenizer does not belong to this model');
  }
  if (parts.kind === 'sentencepiece') return sentencePieceMetadata(tok, vocabSize);
  const tokens: string[] = [], types: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const special = id < tok.vocabSize ? tok.specialName(id) : undefined;
    const bytes = id < tok.vocabSize ? tok.tokenBytes(id) : new Uint8Array(0);
    if (special !== undefined) {
      tokens.push(special);
      types.push(TOKEN_TYPE.CONTROL);
    } else if (bytes.length > 0) {
      tokens.push(bytesToToken(bytes));
      types.push(TOKEN_TYPE.NORMAL);
    } else {
      tokens.push(`[PAD${id}]`); // an id the tokenizer never produces (embedding rows past its vocabulary)
      types.push(TOKEN_TYPE.UNUSED);
    }
  }
  const md: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: preTokenizerType(parts) }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.merges', { type: 'string[]', value: mergeList(parts) }],
  ];
  md.push(...commonMetadata(tok, parts.addBos ?? parts.chatTemplate === undefined));
  return md;
}

// bos/eos/end-of-turn/pad ids, whether llama.cpp adds bos to a prompt, and the chat template.
function commonMetadata(tok: Tokenizer, addBos: boolean): [string, GgufValue][] {
  const md: [string, GgufValue][] = [];
  const id = (k: string, v: number) => {
    if (v >= 0) md.push([k, { type: 'u32', value: v }]);
  };
  id('tokenizer.ggml.bos_token_id', tok.bos);
  id('tokenizer.ggml.eos_token_id', tok.eos);
  id('tokenizer.ggml.eot_token_id', tok.eot);
  id('tokenizer.ggml.padding_token_id', tok.pad);
  // our own template and generate put <|bos|> first; llama.cpp adds it when it tokenizes a prompt
  md.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: tok.bos >= 0 && addBos }]);
  md.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]);
  md.push(['tokenizer.chat_template', { type: 'string', value: tok.chatTemplate }]);
  return md;
}

// Llama 2 style: tokens as tokenizer.json spells them, scores from the merge ranks.
function sentencePieceMetadata(tok: Tokenizer, vocabSize: number): [string, GgufValue][] {
  const parts = tok.toParts();
  const model = (parts.source?.tokenizerJson as any)?.model;
  if (!model?.vocab) throw new UserError('GGUF: this SentencePiece tokenizer carries no tokenizer.json vocabulary to export', 'load it from a tokenizer.json');
  const text: string[] = [];
  for (const [t, i] of Object.entries<number>(model.vocab)) text[i] = t;
  const score = new Float32Array(vocabSize).fill(-1e9); // unreachable by merges: last
  (model.merges as (string | [string, string])[]).forEach((m, rank) => {
    const made = typeof m === 'string' ? m.replace(' ', '') : m[0] + m[1];
    const i = model.vocab[made];
    if (i !== undefined && score[i] === -1e9) score[i] = -rank;
  });
  const tokens: string[] = [], types: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const special = id < tok.vocabSize ? tok.specialName(id) : undefined;
    const t = special ?? text[id];
    if (t === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(TOKEN_TYPE.UNUSED);
    } else {
      tokens.push(t);
      if ([...t].length === 1) score[id] = 0; // a single character is where merging starts
      types.push(special === model.unk_token ? TOKEN_TYPE.UNKNOWN : special !== undefined ? TOKEN_TYPE.CONTROL
        : /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL);
    }
  }
  const md: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: score }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: parts.spm!.prepend !== 'never' }],
  ];
  const unk = model.unk_token !== undefined ? tok.specialTokens.get(model.unk_token) : undefined;
  if (unk !== undefined) md.push(['tokenizer.ggml.unknown_token_id', { type: 'u32', value: unk }]);
  md.push(...commonMetadata(tok, parts.addBos ?? true));
  return md;
}

export function tokenizerFromGguf(f: GgufFile, what: string): Tokenizer | null {
  const md = f.metadata;
  const model = md.get('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model === 'llama') return sentencePieceFromGguf(f, what);
  if (model !== 'gpt2') {
    throw new UserError(`${what}: tokenizer.ggml.model "${model}" is not supported`, 'chatwright reads byte-level BPE (gpt2) and SentencePiece-style (llama) tokenizers from GGUF files');
  }
  const tokens = md.get('tokenizer.ggml.tokens') as string[] | undefined;
  const types = (md.get('tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  const merges = md.get('tokenizer.ggml.merges') as string[] | undefined;
  if (!Array.isArray(tokens) || !Array.isArray(merges)) throw new UserError(`${what}: the tokenizer has no tokens or merges`, 'the file is incomplete');
  const { pattern, wholePieceFirst } = patternOfPre(String(md.get('tokenizer.ggml.pre') ?? 'default'), what);
  const vocab: Record<string, number> = {};
  const specialTokens: Record<string, number> = {};
  tokens.forEach((t, id) => {
    const ty = types[id] ?? TOKEN_TYPE.NORMAL;
    if (ty === TOKEN_TYPE.CONTROL || ty === TOKEN_TYPE.USER_DEFINED) specialTokens[t] = id;
    else if (ty !== TOKEN_TYPE.UNUSED) vocab[t] = id;
  });
  const name = (k: string) => {
    const id = md.get(`tokenizer.ggml.${k}_token_id`);
    return typeof id === 'number' && id < tokens.length ? tokens[id] : null;
  };
  const template = md.get('tokenizer.chat_template');
  const parts: TokenizerParts = {
    vocab: vocabFromMerges(vocab, merges, what, wholePieceFirst), pattern, specialTokens,
    names: { bos: name('bos'), eos: name('eos'), pad: name('padding') },
    ...(typeof template === 'string' && !Tokenizer.isOwnTemplate(template) ? { chatTemplate: template } : {}),
    ...(typeof md.get('tokenizer.ggml.add_bos_token') === 'boolean' ? { addBos: md.get('tokenizer.ggml.add_bos_token') as boolean } : {}),
  };
  return new Tokenizer(parts);
}

// A Llama 2 style tokenizer.json rebuilt from tokens and scores: every split of a token into two tokens is a merge,
// ranked by the token's score (what llama.cpp's SentencePiece tokenizer does), bytes as <0xXX> fallback.
function sentencePieceFromGguf(f: GgufFile, what: string): Tokenizer {
  const md = f.metadata;
  const tokens = md.get('tokenizer.ggml.tokens') as string[] | undefined;
  const scores = md.get('tokenizer.ggml.scores') as number[] | undefined;
  const types = (md.get('tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  if (!Array.isArray(tokens) || !Array.isArray(scores)) throw new UserError(`${what}: the tokenizer has no tokens or scores`, 'the file is incomplete');
  const vocab: Record<string, number> = {};
  const added: { id: number; content: string; special: boolean }[] = [];
  tokens.forEach((t, id) => {
    const ty = types[id] ?? TOKEN_TYPE.NORMAL;
    if (ty === TOKEN_TYPE.UNUSED) return;
    vocab[t] = id;
    if (ty === TOKEN_TYPE.CONTROL || ty === TOKEN_TYPE.UNKNOWN || ty === TOKEN_TYPE.USER_DEFINED) added.push({ id, content: t, special: true });
  });
  const mergeable = (id: number | undefined) => id !== undefined && (types[id] ?? 1) === TOKEN_TYPE.NORMAL;
  const merges: [number, string][] = [];
  tokens.forEach((t, id) => {
    if (!mergeable(id)) return;
    const chars = [...t];
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join(''), b = chars.slice(k).join('');
      if (mergeable(vocab[a]) && mergeable(vocab[b])) merges.push([scores[id], `${a} ${b}`]);
    }
  });
  merges.sort((x, y) => y[0] - x[0]);
  const unk = md.get('tokenizer.ggml.unknown_token_id');
  const prefix = md.get('tokenizer.ggml.add_space_prefix') !== false;
  const obj = {
    model: { type: 'BPE', byte_fallback: true, fuse_unk: true, unk_token: typeof unk === 'number' ? tokens[unk] : null, vocab, merges: merges.map((m) => m[1]) },
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: METASPACE }] : []), { type: 'Replace', pattern: { String: ' ' }, content: METASPACE }] },
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: METASPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  };
  const parts = parseTokenizerJson(obj, what);
  const name = (k: string) => {
    const id = md.get(`tokenizer.ggml.${k}_token_id`);
    return typeof id === 'number' && id < tokens.length ? tokens[id] : null;
  };
  parts.names = { bos: name('bos'), eos: name('eos'), pad: name('padding') };
  const template = md.get('tokenizer.chat_template');
  if (typeof template === 'string' && !Tokenizer.isOwnTemplate(template)) parts.chatTemplate = template;
  const addBos = md.get('tokenizer.ggml.add_bos_token');
  parts.addBos = typeof addBos === 'boolean' ? addBos : true;
  return new Tokenizer(parts);
}
