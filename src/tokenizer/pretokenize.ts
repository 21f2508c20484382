// Pre-splitting text into pieces before BPE: merges never cross a piece boundary. This module knows regular
// expressions and strings; it knows nothing about bytes or tokens.
//
// The published patterns (tiktoken's pat_str, the "Regex" of a Hugging Face Split pre-tokenizer) are written for
// Rust's fancy-regex / Oniguruma. JavaScript differs in three ways, and toJsRegex rewrites each:
//  1. Inline flag groups `(?i:'s|'t)` do not exist (before V8 12.5): every letter inside is spelled out as a class of its
//     Unicode simple case folds, `'[sSſ]|'[tT]`. Rust's (?i) folds s to U+017F (long s) and k to U+212A (Kelvin sign),
//     so those are in the class too.
//  2. `\s` in Rust is the Unicode White_Space property; in JS it also holds U+FEFF and lacks U+0085. Both are written
//     as \p{White_Space} / \P{White_Space}.
//  3. Possessive quantifiers (`?+`, `++`, `*+`, as in nanochat's pattern) do not exist: they become greedy. This is
//     exact for the published patterns, because the part after each possessive never matches what it would give back
//     (`[^\r\n\p{L}\p{N}]?+\p{L}+`: the optional character is not a letter, so giving it back cannot help \p{L}+).
// The parity tests against tiktoken (test/tokenizer-parity.test.ts) prove the rewritten GPT-2 and cl100k patterns split
// exactly like the originals on 1 MB of English and Chinese text with the usual traps.

/** GPT-2 (tiktoken "gpt2", r50k_base, p50k_base). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-4 (tiktoken cl100k_base; also Llama 3). */
export const CL100K_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Qwen2 / Qwen2.5 / Qwen3: the GPT-4 pattern with one digit per piece (\p{N} instead of \p{N}{1,3}). */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Our default: the GPT-4 pattern, unchanged.
 *
 * Runs of Han characters: \p{L}+ keeps a whole run between punctuation marks as one piece (a half-line of a poem,
 * "床前明月光"), as GPT-4 and o200k do. Chinese has no spaces, so the run is the only word boundary we have without a
 * segmenter; inside it BPE learns the frequent compounds (明月, 春风, 何处) by their counts. The alternatives are worse:
 * one piece per character caps compression at 3 bytes per token (a Han character is 3 bytes of UTF-8) and forbids
 * every multi-character token; fixed-length chunks depend on where the run starts, so one word would tokenize
 * differently in different lines. The price is more unique pieces in training (most poem lines are unique), which the
 * trainer's flat word buffers absorb. The optional leading non-letter attaches "，" to the half-line after it.
 * Measured when this was chosen (8,192 ids trained on 4.8 MB of simplified poems, held-out Tang poems): 3.44 bytes per
 * token with whole runs, 3.33 with one piece per character (pattern "\p{Script=Han}|" + this one).
 */
export const DEFAULT_PATTERN = CL100K_PATTERN;

// Unicode simple case folding of the ASCII letters, as Rust's regex applies it under (?i).
function foldClass(c: string): string {
  const lower = c.toLowerCase();
  const upper = c.toUpperCase();
  let cls = lower === upper ? c : lower + upper;
  if (lower === 's') cls += '\u017f';
  if (lower === 'k') cls += '\u212a';
  return cls.length > 1 ? `[${cls}]` : cls;
}

/** Rewrite a Rust/Oniguruma-style pattern as an equivalent JavaScript pattern source (used with the `u` flag). */
export function toJsPatternSource(pattern: string): string {
  let out = '';
  let inClass = false;
  let caseless = 0; // depth of (?i: groups we are inside
  const groupStack: boolean[] = []; // for each open group: is it a (?i: group
  let afterQuantifier = false; // the previous token was a quantifier, so a '+' now makes it possessive
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    const wasQuantifier: boolean = afterQuantifier;
    afterQuantifier = false;
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === 's') out += '\\p{White_Space}';
      else if (n === 'S') out += '\\P{White_Space}';
      else if (n === 'p' || n === 'P') {
        const end = pattern.indexOf('}', i);
        out += pattern.slice(i, end + 1);
        i = end;
        continue;
      } else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      // a letter in a class under (?i:), not an end of a range: add its case folds
      if (caseless > 0 && /[a-zA-Z]/.test(c) && pattern[i - 1] !== '-' && pattern[i + 1] !== '-') out += foldClass(c).replace(/[[\]]/g, '');
      else out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (pattern[i + 1] === ']') { out += ']'; i++; } // a literal ] first in a class
      continue;
    }
    if (c === '(') {
      if (pattern.startsWith('(?i:', i)) {
        groupStack.push(true);
        caseless++;
        out += '(?:';
        i += 3;
        continue;
      }
      if (pattern.startsWith('(?', i) && /^\(\?[a-zA-Z-]+[):]/.test(pattern.slice(i))) {
        throw new Error(`unsupported inline flags in pre-tokenizer pattern at ${i}: ${pattern.slice(i, i + 8)}`);
      }
      groupStack.push(false);
      out += c;
      continue;
    }
    if (c === ')') {
      if (groupStack.pop()) caseless--;
      out += c;
      continue;
    }
    if (c === '+' && wasQuantifier) continue; // possessive quantifier: greedy (see the header)
    if (c === '+' || c === '*' || c === '?') afterQuantifier = !wasQuantifier; // '+?' is lazy, not a new quantifier
    if (c === '{') {
      const m = /^\{\d*(,\d*)?\}/.exec(pattern.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        afterQuantifier = true;
        continue;
      }
    }
    if (caseless > 0 && /[a-zA-Z]/.test(c)) {
      out += foldClass(c);
      continue;
    }
    out += c;
  }
  return out;
}

/** A global, Unicode JS regex that splits like `pattern` (Rust/Oniguruma syntax, as published). */
export function toJsRegex(pattern: string): RegExp {
  const source = toJsPatternSource(pattern);
  try {
    return new RegExp(source, 'gu');
  } catch (e) {
    throw new Error(`pre-tokenizer pattern cannot be compiled as JavaScript: ${(e as Error).message}\n  pattern: ${pattern}\n  as JS:   ${source}`);
  }
}

/** Split text into pieces; their concatenation is the text (every pattern here ends with a catch-all \s+ / any run). */
export function splitPieces(re: RegExp, text: string): string[] {
  re.lastIndex = 0;
  const pieces = text.match(re) ?? [];
  return pieces;
}
