// chatwright chat: a multi-turn conversation in the terminal, replies streamed token by token.
//
//   chatwright chat --model runs/demo/sft
//   chatwright chat --model runs/demo/sft --system "你是一位诗人。" --temperature 0.7 --explain
//   chatwright chat --model runs/demo/sft --dtype q8_0       (8-bit weights: faster replies, nearly the same text)
//   printf 'hello\n/reset\nhi again\n' | chatwright chat --model runs/demo/sft --seed 1   (a pipe: plain output)
//
// Commands: /reset, /temperature X, /top_p X, /top_k N, /min_p X, /seed N, /explain [on|off], /system, /help, /quit.
// Ctrl-C stops the current reply and keeps the REPL; Ctrl-D (end of input) leaves. One KV cache holds the conversation
// and is reused across turns (only the new tokens are prefilled). When the conversation outgrows the context window the
// oldest turns are dropped, the system message stays, and the user is told.
// Output: the reply text on stdout (after "assistant: " when stdin is not a terminal); notices on stderr.
import * as readline from 'node:readline';
import { UserError } from '../util/errors.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';
import { loadChatModel, modelSpec, samplingFrom, samplingSpec } from './generate.js';
import type { Message, Tokenizer } from '../tokenizer/index.js';
import { Engine, chatStopTokens, generateStream, renderExplain, tokenTextOf, resolveSampling, type SamplingOptions, type Session } from '../generate/index.js';

const spec = {
  ...modelSpec,
  system: { type: 'string', value: 'TEXT', description: 'system prompt (default: none)' },
  ...samplingSpec,
  temperature: { ...samplingSpec.temperature, default: 0.7 },
  'top-p': { ...samplingSpec['top-p'], default: 0.9 },
} as const;

const HELP = `commands:
  /reset            start a new conversation (the system prompt stays)
  /temperature X    set the temperature (0 = greedy)      /top_p X   nucleus mass      /top_k N   top-k (0 = off)
  /min_p X          set min-p                              /seed N    reseed the draws
  /explain [on|off] show the candidates of every token     /system    show the system prompt
  /help             this list                              /quit      leave (or Ctrl-D)`;

export { chatStopTokens };

// Drop the oldest user/assistant turns until the prompt leaves `reserve` tokens of room; the system message stays.
// Returns the prompt ids and how many turns were dropped (null when even the newest message alone does not fit).
export function fitContext(
  tokenizer: Tokenizer, messages: Message[], maxT: number, reserve: number,
): { ids: number[]; dropped: number; messages: Message[] } | null {
  const sys = messages[0]?.role === 'system' ? [messages[0]] : [];
  let rest = messages.slice(sys.length);
  let dropped = 0;
  for (;;) {
    const ids = tokenizer.renderForCompletion([...sys, ...rest]);
    if (ids.length + reserve <= maxT) return { ids, dropped, messages: [...sys, ...rest] };
    // drop through the first assistant message (one turn); never drop the newest user message
    const next = rest.findIndex((m, i) => i > 0 && m.role === 'user');
    if (next < 0) return null;
    rest = rest.slice(next);
    dropped++;
  }
}

export async function run(argv: string[]): Promise<number> {
  const summary = 'chat with a model in the terminal';
  if (wantsHelp(argv)) {
    console.log(helpText('chat', summary, spec) + '\n\n' + HELP);
    return 0;
  }
  const a = parseArgs('chat', argv, spec);
  if (a._.length) throw new UsageError('chat', `unexpected argument "${a._[0]}"`);
  const { model, tokenizer } = loadChatModel(a.model, 'chat', a.dtype);
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const color = tty && !process.env.NO_COLOR;
  const sampling: SamplingOptions = samplingFrom(a);
  resolveSampling(sampling, model.config.vocabSize); // bad options fail here, before the first turn
  let explain = a.explain;
  const maxT = model.config.maxSeqLen;
  const maxNewTokens = a['max-tokens'];
  const reserve = Math.min(maxNewTokens, Math.floor(maxT / 4));
  const system: Message[] = a.system ? [{ role: 'system', content: a.system }] : [];
  let messages: Message[] = [...system];
  let turn = 0; // each reply draws with seed + turn (turn counts from the start or the last /seed), so a session replays
  const session: Session = new Engine(model).session();
  const stopTokens = chatStopTokens(tokenizer);
  const notice = (s: string) => process.stderr.write(`${color ? '\x1b[2m' : ''}[${s}]${color ? '\x1b[0m' : ''}\n`);

  const rl = readline.createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
  let abort: AbortController | null = null;
  const onInterrupt = () => {
    if (abort) abort.abort();
    else if (tty) {
      process.stdout.write('\n(Ctrl-D or /quit to leave)\n');
      rl.prompt();
    } else rl.close();
  };
  rl.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);
  if (tty) {
    notice(`chatwright chat: ${a.model} (context ${maxT} tokens, seed ${sampling.seed}); /help for commands, Ctrl-D to leave`);
    rl.setPrompt(color ? '\x1b[1myou:\x1b[0m ' : 'you: ');
    rl.prompt();
  }

  const setNumber = (key: keyof SamplingOptions, value: string) => {
    const x = Number(value);
    try {
      if (value.trim() === '' || !Number.isFinite(x)) throw new UserError(`"${value}" is not a number`);
      resolveSampling({ ...sampling, [key]: x });
      (sampling as Record<string, number>)[key] = x;
      notice(`${key} = ${x}`);
    } catch (e) {
      notice(`not set: ${(e as Error).message}`);
    }
  };

  for await (const raw of rl) {
    const line = raw.trim();
    if (line.startsWith('/')) {
      const [cmd, ...args] = line.split(/\s+/);
      const arg = args.join(' ');
      switch (cmd) {
        case '/quit': case '/exit': rl.close(); break;
        case '/reset': messages = [...system]; session.reset(); notice('new conversation'); break;
        case '/temperature': case '/temp': setNumber('temperature', arg); break;
        case '/top_p': case '/top-p': setNumber('topP', arg); break;
        case '/top_k': case '/top-k': setNumber('topK', arg); break;
        case '/min_p': case '/min-p': setNumber('minP', arg); break;
        case '/seed': setNumber('seed', arg); turn = 0; break;
        case '/explain': explain = arg === '' ? !explain : arg === 'on'; notice(`explain ${explain ? 'on' : 'off'}`); break;
        case '/system': notice(system.length ? `system prompt: ${system[0].content}` : 'no system prompt (start with --system TEXT)'); break;
        case '/help': process.stderr.write(HELP + '\n'); break;
        default: notice(`unknown command ${cmd}; /help lists them`);
      }
      if (tty) rl.prompt();
      continue;
    }
    if (line === '') {
      if (tty) rl.prompt();
      continue;
    }
    messages.push({ role: 'user', content: line });
    const fit = fitContext(tokenizer, messages, maxT, reserve);
    if (!fit) {
      messages.pop();
      notice(`that message is too long for the context window of ${maxT} tokens; it was not sent`);
      if (tty) rl.prompt();
      continue;
    }
    if (fit.dropped > 0) {
      messages = fit.messages;
      notice(`the conversation outgrew the context window (${maxT} tokens): dropped the oldest ${fit.dropped} turn(s)` +
        (system.length ? '; the system prompt stays' : ''));
    }
    abort = new AbortController();
    process.stdout.write(tty ? (color ? '\x1b[1massistant:\x1b[0m ' : 'assistant: ') : 'assistant: ');
    let reply = '';
    let i = 0;
    for await (const chunk of generateStream(model, tokenizer, fit.ids, {
      ...sampling, seed: (sampling.seed ?? 0) + turn++, maxNewTokens: Math.min(maxNewTokens, maxT - fit.ids.length),
      session, signal: abort.signal, stopTokens,
      explain: explain ? a['explain-top'] : 0,
    })) {
      if (explain && chunk.step) {
        process.stdout.write('\n' + renderExplain(chunk.step, tokenTextOf(tokenizer),
          { color, index: i++, greedy: sampling.temperature === 0 }));
      } else process.stdout.write(chunk.delta);
      reply += chunk.delta;
      if (chunk.result) {
        if (explain) process.stdout.write(`\nassistant: ${chunk.result.text}`);
        process.stdout.write('\n');
        if (chunk.result.aborted) notice('stopped');
        else if (chunk.result.finishReason === 'length') notice(`reply cut at ${chunk.result.completionTokens} tokens`);
        reply = chunk.result.text;
      }
    }
    abort = null;
    if (reply.length > 0) messages.push({ role: 'assistant', content: reply });
    else {
      messages.pop(); // a conversation has no empty messages: forget the exchange
      notice('empty reply; this exchange is not kept in the conversation');
    }
    if (tty) rl.prompt();
  }
  process.removeListener('SIGINT', onInterrupt);
  if (tty) process.stdout.write('\n');
  return 0;
}
