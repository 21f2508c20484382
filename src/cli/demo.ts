// `chatwright demo`: tokenizer, data, pretraining, SFT and evaluation on the built-in poetry corpus, then the chat with the
// result when a terminal is attached (src/stages/demo.ts).
import { join } from 'node:path';
import { demo } from '../stages/demo.js';
import { exitCodeOf } from '../train/loop.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  out: { type: 'string', value: 'DIR', description: 'run folder: tokenizer, data, base, sft, feedback, rm, dpo, ppo, grpo, eval.json', default: 'runs/demo' },
  quick: { type: 'boolean', description: 'a small slice, a few steps per stage: about a minute', default: false },
  chat: { type: 'boolean', description: 'open the chat with the PPO model at the end (only with a terminal)', default: true },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('demo', 'the whole path on the built-in poetry corpus: tokenizer, pretrain, SFT, preferences, reward model, DPO, PPO, GRPO, eval, chat', spec));
    return 0;
  }
  const a = parseArgs('demo', argv, spec);
  if (a._.length) throw new UsageError('demo', `unexpected argument "${a._[0]}"`);
  const r = await demo({ out: a.out, quick: a.quick, chat: a.chat });
  if (r.stopped !== 'steps') return exitCodeOf(r.stopped);
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  if (a.chat && tty) {
    console.error(`\nopening the chat with ${join(r.out, 'ppo')} (Ctrl-D to leave)\n`);
    const chat = await import('./chat.js');
    return chat.run(['--model', join(r.out, 'ppo')]);
  }
  return 0;
}
