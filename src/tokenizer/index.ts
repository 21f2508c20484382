// The tokenizer's public surface: byte-level BPE (train, encode, decode), the special tokens, the chat template and the
// file formats. Everything else in the project imports from here.
import { UserError } from '../util/errors.js';
import { SPECIAL_TOKENS } from './special.js';
import { Tokenizer, specialTokensFrom } from './tokenizer.js';
import { trainBpe, vocabFromTraining } from './train.js';
import { DEFAULT_PATTERN } from './pretokenize.js';

export { Tokenizer } from './tokenizer.js';
export { SPECIAL_TOKENS, type SpecialToken } from './special.js';
export type { Role, Message } from './chat.js';
export { CHAT_TEMPLATE_JINJA, validateConversation } from './chat.js';
export { CL100K_PATTERN, GPT2_PATTERN, QWEN2_PATTERN, DEFAULT_PATTERN, toJsRegex } from './pretokenize.js';
export type { StreamDecoder } from './stream.js';

/**
 * Train a tokenizer to `vocabSize` ids in all: the 256 bytes, vocabSize - 256 - 7 merges, then the 7 special tokens.
 * If the texts run out of pairs first, the vocabulary is smaller (vocabSize on the result says how large).
 */
export function trainTokenizer(
  texts: Iterable<string>,
  opts: { vocabSize: number; pattern?: string; onProgress?: (merges: number) => void; onCounted?: (info: { pieces: number; uniquePieces: number; bytes: number }) => void },
): Tokenizer {
  const nMerges = opts.vocabSize - 256 - SPECIAL_TOKENS.length;
  if (!Number.isInteger(opts.vocabSize) || nMerges < 0) {
    throw new UserError(`vocabulary size ${opts.vocabSize} is too small: it holds 256 bytes and ${SPECIAL_TOKENS.length} special tokens`, `use at least ${256 + SPECIAL_TOKENS.length}`);
  }
  const pattern = opts.pattern ?? DEFAULT_PATTERN;
  const r = trainBpe(texts, { nMerges, pattern, onProgress: opts.onProgress, onCounted: opts.onCounted });
  return Tokenizer.fromVocab(vocabFromTraining(r), pattern, specialTokensFrom(r.tokenBytes.length));
}
