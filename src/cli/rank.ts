// `chatwright rank`: a person ranks sampled answers in the terminal, into a preference store (src/feedback/store.ts).
//
//   chatwright rank --samples runs/demo/feedback/samples.jsonl --store runs/demo/feedback
//   printf '2 1 3 4\nskip\n' | chatwright rank --samples samples.jsonl --store prefs --annotator alice   (a pipe works too)
//
// For each item it shows the prompt and the K answers, numbered; the person types the order, best first. What can be
// typed is in HELP below. Every ranking is on disk before the next item shows; quitting (q, Ctrl-D, Ctrl-C) loses
// nothing but the item on screen. Items and acknowledgements go to stdout, notices and errors to stderr.
import * as readline from 'node:readline';
import { userInfo } from 'node:os';
import { UserError } from '../util/errors.js';
import { helpText, parseArgs, storeOptions, wantsHelp, UsageError } from './args.js';
import {
  PreferenceStore, formatOrder, parseOrder, rankingFromJson, readSamples, type SampleItem, type Submission,
} from '../feedback/index.js';

const spec = {
  samples: storeOptions.samples,
  store: storeOptions.store,
  annotator: { type: 'string', description: 'your name in the records (default: the login name)' },
  repeats: storeOptions.repeats,
} as const;

const HELP = `type, then Enter:
  3 1 2 4     the answers' numbers, best first (all of them)
  3 1=2 4     = ties answers (here 1 and 2 are equally good)
  bad         every answer is bad (no preference among them)
  skip        no opinion; the item goes to someone else
  undo        take back your last ranking and show that item again
  ?           this help              q   leave (Ctrl-D too); every ranking typed so far is saved`;

function defaultAnnotator(): string {
  try {
    return userInfo().username || 'anonymous';
  } catch {
    return process.env.USER ?? 'anonymous';
  }
}

function indent(text: string, pad: string): string {
  return text.split('\n').join('\n' + pad);
}

export function renderItem(item: SampleItem, position: string): string {
  const lines = [`\n[${position}] ${item.model ? `model ${item.model}` : ''}`.trimEnd()];
  for (const m of item.prompt) lines.push(`${m.role}: ${indent(m.content, '  ')}`);
  item.responses.forEach((r, i) => {
    const cut = item.finish?.[i] === 'length' ? '  (cut at the token limit)' : '';
    lines.push(`  ${String(i + 1).padStart(2)}) ${indent(r === '' ? '(empty)' : r, '      ')}${cut}`);
  });
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const summary = 'rank sampled answers in the terminal';
  if (wantsHelp(argv)) {
    console.log(helpText('rank', summary, spec) + '\n\n' + HELP);
    return 0;
  }
  const a = parseArgs('rank', argv, spec);
  if (a._.length) throw new UsageError('rank', `unexpected argument "${a._[0]}"`);
  if (!a.store) throw new UsageError('rank', '--store DIR is required, e.g. --store runs/demo/feedback');
  const annotator = a.annotator ?? defaultAnnotator();
  const notice = (s: string) => process.stderr.write(`[${s}]\n`);
  const items = a.samples ? readSamples(a.samples, notice) : null;
  const store = PreferenceStore.open(a.store, { repeats: a.repeats, command: 'chatwright rank' });
  let saved = 0, undoneCount = 0;
  try {
    for (const r of store.repaired) notice(r);
    if (items) {
      const added = store.addItems(items);
      if (added) notice(`added ${added} new item(s) from ${a.samples} to ${a.store}`);
    }
    const among = items ? new Set(items.map((i) => i.id)) : undefined;
    const c0 = store.counts(among);
    if (c0.items === 0) throw new UserError(`nothing to rank in ${a.store}`, 'give --samples FILE (from `chatwright sample`)');
    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    notice(`chatwright rank: ${c0.pending} of ${c0.items} item(s) to rank in ${a.store}, as ${annotator}; ? for help`);

    let current: SampleItem | null = null;
    const showNext = (): boolean => {
      current = store.next(annotator, among);
      if (!current) return false;
      const c = store.counts(among);
      process.stdout.write(renderItem(current, `${c.done + 1}/${c.items}`) + '\n');
      return true;
    };
    const rl = readline.createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
    rl.setPrompt('order (best first)> ');
    let interrupted = false;
    rl.on('SIGINT', () => {
      interrupted = true;
      rl.close();
    });
    if (!showNext()) {
      notice('nothing left for you to rank here');
      rl.close();
      return 0;
    }
    if (tty) rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      const cmd = line.toLowerCase();
      let sub: Submission | null = null;
      if (line === '') {
        // nothing typed: ask again
      } else if (cmd === '?' || cmd === 'h' || cmd === 'help') process.stderr.write(HELP + '\n');
      else if (cmd === 'q' || cmd === 'quit' || cmd === 'exit') break;
      else if (cmd === 'u' || cmd === 'undo') {
        const undone = store.undo(annotator);
        if (!undone) notice('nothing of yours to undo');
        else {
          undoneCount++;
          const was = undone.verdict === 'ranked' ? formatOrder(rankingFromJson(undone.ranking, undone.responses.length, 'undo')) : undone.verdict;
          process.stdout.write(`undone: ${was}; here it is again\n`);
          showNext();
        }
      } else if (cmd === 's' || cmd === 'skip') sub = { verdict: 'skipped' };
      else if (cmd === 'b' || cmd === 'bad' || cmd === 'all bad') sub = { verdict: 'all-bad' };
      else {
        try {
          sub = { verdict: 'ranked', ranking: parseOrder(line, current!.responses.length) };
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          process.stderr.write(`not saved: ${e.message}${e.hint ? ` (${e.hint})` : ''}; ? for help\n`);
        }
      }
      if (sub) {
        const rec = store.submit(annotator, current!.id, sub);
        saved++;
        process.stdout.write(`saved: ${rec.verdict === 'ranked' ? formatOrder(rankingFromJson(rec.ranking, rec.responses.length, 'saved')) : rec.verdict}\n`);
        if (!showNext()) {
          notice('nothing left for you to rank here');
          break;
        }
      }
      if (tty) rl.prompt();
    }
    rl.close();
    const c = store.counts(among);
    notice(`${interrupted ? 'stopped; ' : ''}${saved} saved${undoneCount ? `, ${undoneCount} undone` : ''} this session; ${c.done} of ${c.items} done, ${c.pending} to go (${a.store})`);
  } finally {
    store.releaseLease(annotator);
    store.close();
  }
  return 0;
}
