// `chatwright demo`: tokenizer, data, pretraining, SFT and evaluation on the built-in poetry corpus, then the chat with the
// result when a terminal is attached (src/stages/demo.ts).
import { join } from 'node:path';
import { demo } from '../stages/demo.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  out: { type: 'string', value: 'DIR', description: 'run folder: tokenizer, data, base, sft, eval.json', default: 'runs/demo' },
  quick: { type: 'boolean', description: 'a small slice, a few dozen steps per stage: under 2 minutes', default: false },
  chat: { type: 'boolean', description: 'open the chat with the SFT model at the end (only with a terminal)', default: true },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('demo', 'the whole path on the built-in poetry corpus: tokenizer, pretrain, SFT, eval, chat', spec));
    return 0;
  }
  const a = parseArgs('demo', argv, spec);
  if (a._.length) throw new UsageError('demo', `unexpected argument "${a._[0]}"`);
  const r = await demo({ out: a.out, quick: a.quick, chat: a.chat });
  if (r.stopped) return 130;
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  if (a.chat && tty) {
    console.error(`\nopening the chat with ${join(r.out, 'sft')} (Ctrl-D to leave)\n`);
    const chat = await import('./chat.js');
    return chat.run(['--model', join(r.out, 'sft')]);
  }
  return 0;
}
