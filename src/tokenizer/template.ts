// A model's own chat template (tokenizer_config.json's chat_template, Jinja) rendered with @huggingface/jinja, the
// Jinja of transformers.js, as transformers' apply_chat_template does: messages, bos_token, eos_token and
// add_generation_prompt in; the text out, tokenized with special tokens recognised and no extra bos (transformers
// tokenizes the rendered chat with add_special_tokens=False).
//
// The training mask: templates have no common way to mark the assistant's tokens ({% generation %} is rare), so each
// assistant message is found in the rendered text, in order, as its content (or its content trimmed, as Llama 3's
// template writes it), and the mask covers that span plus the end-of-turn token that follows it (only whitespace
// between), so the model learns to stop. A token is masked when its first byte past any leading spaces lies inside a
// span; token positions come from the token bytes laid along the text (alignTokens).
//
// Unlike chatwright's own template (chat.ts), a user message that contains a special token's text ("<|im_end|>") is
// tokenized as that special token here, as transformers does with these templates.
import { Template } from '@huggingface/jinja';
import { UserError } from '../util/errors.js';
import { validateConversation, type Message } from './chat.js';

export interface TemplateEncoder {
  readonly bos: number; readonly eos: number; readonly eot: number;
  encode(text: string, opts: { allowedSpecial: 'all' }): number[];
  tokenBytes(id: number): Uint8Array;
  specialName(id: number): string | undefined;
  stopTokens(): number[];
}

const compiled = new Map<string, Template>();

export function renderTemplateText(tok: TemplateEncoder, template: string, messages: Message[], addGenerationPrompt: boolean): string {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new UserError(`the chat template does not parse: ${(e as Error).message}`, 'check chat_template in tokenizer_config.json');
    }
    compiled.set(template, t);
  }
  const name = (id: number) => (id >= 0 ? tok.specialName(id) ?? '' : '');
  try {
    return t.render({
      messages, add_generation_prompt: addGenerationPrompt, bos_token: name(tok.bos), eos_token: name(tok.eos),
    });
  } catch (e) {
    throw new UserError(`the chat template failed on this conversation: ${(e as Error).message}`, 'check the roles and order of the messages');
  }
}

// The byte span in `text` of each token: where its first byte that is not a leading space lies, and its end (a
// token "▁Li" or " Li" belongs with the word it starts; a token of spaces only, with the text after it). SentencePiece puts a ▁ (decoded as a space) before text that
// follows a special token without it being in the text: such a space is skipped over.
function alignTokens(tok: TemplateEncoder, ids: number[], text: Uint8Array): [number, number][] {
  const spans: [number, number][] = [];
  let pos = 0, afterSpecial = true;
  for (const id of ids) {
    let b = tok.tokenBytes(id);
    const special = tok.specialName(id) !== undefined;
    if (!special && afterSpecial && b[0] === 0x20 && text[pos] !== 0x20) b = b.subarray(1);
    let lead = 0;
    while (!special && lead < b.length && b[lead] === 0x20) lead++;
    // a token of spaces only ("▁" before a character outside the vocabulary) goes with what follows it
    spans.push([lead === b.length ? pos + b.length : pos + lead, pos + b.length]);
    pos += b.length;
    afterSpecial = special;
  }
  return spans;
}

export function renderWithTemplate(tok: TemplateEncoder, template: string, messages: Message[], mode: 'train' | 'generate'): { ids: number[]; mask: number[] } {
  validateConversation(messages, mode === 'train' ? 'assistant' : 'user');
  const text = renderTemplateText(tok, template, messages, mode === 'generate');
  const ids = tok.encode(text, { allowedSpecial: 'all' });
  if (mode === 'generate') return { ids, mask: ids.map(() => 0) };
  // character spans of the assistant's turns, found in order
  const stops = tok.stopTokens().map((id) => tok.specialName(id)).filter((s): s is string => s !== undefined);
  const spans: [number, number][] = [];
  let cursor = 0;
  for (const m of messages) {
    let at = text.indexOf(m.content, cursor), len = m.content.length;
    if (at < 0) {
      const trimmed = m.content.trim();
      at = text.indexOf(trimmed, cursor);
      len = trimmed.length;
    }
    if (at < 0) {
      throw new UserError(`the chat template does not write the ${m.role} message ${JSON.stringify(m.content.slice(0, 40))} as it is`,
        'this template rewrites messages, so the training mask cannot be found; use a template that keeps message text');
    }
    let end = at + len;
    if (m.role === 'assistant') {
      const ws = /^\s*/.exec(text.slice(end))![0].length;
      const stop = stops.find((s) => text.startsWith(s, end + ws));
      if (stop) end += ws + stop.length;
      spans.push([at, end]);
    }
    cursor = end;
  }
  const enc = new TextEncoder();
  const byteAt = (ch: number) => enc.encode(text.slice(0, ch)).length;
  const byteSpans = spans.map(([a, b]) => [byteAt(a), byteAt(b)]);
  const tokens = alignTokens(tok, ids, enc.encode(text));
  const mask = tokens.map(([s]) => (byteSpans.some(([a, b]) => s >= a && s < b) ? 1 : 0));
  return { ids, mask };
}
