// The chat template: a conversation (messages) -> token ids and the training mask. It knows messages and special token
// ids; the text of each message is encoded by the tokenizer with special tokens as plain text, so a user cannot forge a
// turn boundary by typing "<|eot|>".
//
//   <|bos|> [<|system|> system text <|eot|>] <|user|> text <|eot|> <|assistant|> text <|eot|> <|user|> ...
//
// mask is 1 exactly on the assistant's content tokens and its <|eot|> (what the model must learn to produce, including
// when to stop), 0 elsewhere, including on <|assistant|> itself (given, never predicted). This is nanochat's
// `render_conversation` (github.com/karpathy/nanochat, nanochat/tokenizer.py) with our token names.
// CHAT_TEMPLATE_JINJA renders the same text for Hugging Face transformers (apply_chat_template); its {% generation %}
// block gives the same mask through return_assistant_tokens_mask=True.
import { UserError } from '../util/errors.js';

export type Role = 'system' | 'user' | 'assistant';
export interface Message { role: Role; content: string }

export interface ChatEncoder {
  encodeOrdinary(text: string): number[];
  readonly bos: number; readonly system: number; readonly user: number; readonly assistant: number; readonly eot: number;
  readonly source?: string; // the file it was read from, named in errors
}

const ROLES = ['system', 'user', 'assistant'];
const HINT = 'a conversation is an optional system message, then user and assistant messages in turn, starting with user';

/** Throws a UserError naming the first broken rule. `end`: which role the last message must have. */
export function validateConversation(messages: Message[], end: 'assistant' | 'user'): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new UserError('the conversation has no messages', HINT);
  let expect: Role = 'user';
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as unknown as { role?: unknown; content?: unknown };
    if (!m || typeof m !== 'object') throw new UserError(`messages[${i}] is not an object with role and content`, HINT);
    if (typeof m.role !== 'string' || !ROLES.includes(m.role)) {
      throw new UserError(`messages[${i}]: unknown role ${JSON.stringify(m.role)}; expected one of ${ROLES.join(', ')}`, HINT);
    }
    if (typeof m.content !== 'string') throw new UserError(`messages[${i}] (${m.role}): content must be a string, got ${typeof m.content}`, HINT);
    if (m.content.length === 0) throw new UserError(`messages[${i}] (${m.role}): content is empty`, 'drop the message or give it text');
    if (m.role === 'system') {
      if (i !== 0) throw new UserError(`messages[${i}]: a system message may only come first`, HINT);
      continue;
    }
    if (m.role !== expect) throw new UserError(`messages[${i}]: expected a ${expect} message, got ${m.role}`, HINT);
    expect = expect === 'user' ? 'assistant' : 'user';
  }
  const last = messages[messages.length - 1].role;
  if (last !== end) {
    throw new UserError(
      `the conversation must end with a${end === 'assistant' ? 'n assistant' : ' user'} message, got ${last}`,
      end === 'assistant' ? 'render() is for training: end with the answer to learn; use renderForCompletion() to generate one' : 'renderForCompletion() generates the answer to the last user message',
    );
  }
}

function roleToken(tok: ChatEncoder, role: Role): number {
  return role === 'system' ? tok.system : role === 'user' ? tok.user : tok.assistant;
}

function checkChatTokens(tok: ChatEncoder): void {
  for (const [name, id] of [['<|bos|>', tok.bos], ['<|system|>', tok.system], ['<|user|>', tok.user], ['<|assistant|>', tok.assistant], ['<|eot|>', tok.eot]] as const) {
    if (!(id >= 0)) throw new UserError(`${tok.source ? `the tokenizer ${tok.source}` : 'this tokenizer'} has no ${name} token, so it cannot render chats`, 'train one with `chatwright tokenizer train`, which adds the chat tokens');
  }
}

export function renderConversation(tok: ChatEncoder, messages: Message[]): { ids: number[]; mask: number[] } {
  checkChatTokens(tok);
  validateConversation(messages, 'assistant');
  const ids: number[] = [tok.bos];
  const mask: number[] = [0];
  for (const m of messages) {
    ids.push(roleToken(tok, m.role));
    mask.push(0);
    const bit = m.role === 'assistant' ? 1 : 0;
    for (const id of tok.encodeOrdinary(m.content)) {
      ids.push(id);
      mask.push(bit);
    }
    ids.push(tok.eot);
    mask.push(bit);
  }
  return { ids, mask };
}

export function renderForCompletion(tok: ChatEncoder, messages: Message[]): number[] {
  checkChatTokens(tok);
  validateConversation(messages, 'user');
  const ids: number[] = [tok.bos];
  for (const m of messages) {
    ids.push(roleToken(tok, m.role));
    for (const id of tok.encodeOrdinary(m.content)) ids.push(id);
    ids.push(tok.eot);
  }
  ids.push(tok.assistant);
  return ids;
}

/** The same template in Jinja for tokenizer_config.json (transformers' apply_chat_template). */
export const CHAT_TEMPLATE_JINJA = [
  "{%- if messages[0]['role'] == 'system' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}",
  '{{- bos_token -}}',
  "{%- if messages[0]['role'] == 'system' -%}{{- '<|system|>' + messages[0]['content'] + '<|eot|>' -}}{%- endif -%}",
  '{%- for message in loop_messages -%}',
  "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/... after an optional system message') -}}{%- endif -%}",
  "{%- if message['role'] == 'assistant' -%}{{- '<|assistant|>' -}}{%- generation -%}{{- message['content'] + '<|eot|>' -}}{%- endgeneration -%}",
  "{%- else -%}{{- '<|user|>' + message['content'] + '<|eot|>' -}}{%- endif -%}",
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}",
].join('');
