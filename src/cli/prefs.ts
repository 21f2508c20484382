// `chatwright prefs`: preference data in and out of a store, in the formats people already have (src/feedback/formats.ts).
//
//   chatwright prefs export --store runs/demo/feedback --format pairs --out prefs.jsonl    (TRL conversational pairs)
//   chatwright prefs export --store runs/demo/feedback --format kway --out rankings.jsonl
//   chatwright prefs import hh-rlhf.jsonl --store runs/mine/feedback                         (any supported format)
//   chatwright prefs counts --store runs/demo/feedback
//
// One command with three verbs rather than three commands: they share the store and the format list, and `prefs` is
// where a user looks for both directions. Export reads the store without its lock (a server may be writing it); import
// writes through the store like any annotator, so a file imported twice adds nothing the second time.
import { basename } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { helpText, oneOf, parseArgs, wantsHelp, UsageError } from './args.js';
import {
  EXPORT_FORMATS, PreferenceConflict, PreferenceStore, exportLines, itemId, kwayFromRecords, readPreferenceFile, readStore,
  toJsonl, type ExportFormat,
} from '../feedback/index.js';

const spec = {
  store: { type: 'string', description: 'preference store folder' },
  format: { type: 'string', description: `export format: ${EXPORT_FORMATS.join(', ')} (kway: {"prompt", "responses", "ranking"}; pairs: TRL conversational; pairs-plain: TRL standard strings; hh: Anthropic-HH transcripts)`, default: 'pairs' },
  out: { type: 'string', description: 'file to write (export)' },
  annotator: { type: 'string', description: 'import: annotator of records that name none (default: imported:<file name>)' },
  json: { type: 'boolean', description: 'print the result as JSON on stdout', default: false },
} as const;

const VERBS = 'export, import FILE, counts';

export async function run(argv: string[]): Promise<number> {
  const summary = 'export, import and count preference data';
  if (wantsHelp(argv)) {
    console.log(helpText('prefs', `${summary}: chatwright prefs <${VERBS}>`, spec));
    return 0;
  }
  const a = parseArgs('prefs', argv, spec);
  const [verb, ...rest] = a._;
  if (!a.store) throw new UsageError('prefs', '--store DIR is required');
  const report = (obj: object, text: string) => console.log(a.json ? JSON.stringify(obj) : text);

  if (verb === 'export') {
    if (rest.length) throw new UsageError('prefs export', `unexpected argument "${rest[0]}"`);
    if (!a.out) throw new UsageError('prefs export', '--out FILE is required');
    const format = oneOf('prefs', 'format', a.format, EXPORT_FORMATS) as ExportFormat;
    const kway = kwayFromRecords(readStore(a.store).records);
    const rows = kway.flatMap((k) => exportLines(k, format));
    writeFileAtomic(a.out, toJsonl(rows));
    report({ out: a.out, format, rankings: kway.length, lines: rows.length },
      `wrote ${a.out}: ${rows.length} line(s) (${format}) from ${kway.length} ranking(s) in ${a.store}`);
    return 0;
  }
  if (verb === 'import') {
    if (rest.length !== 1) throw new UsageError('prefs import', 'give one file');
    const file = rest[0];
    const kway = readPreferenceFile(file);
    const store = PreferenceStore.open(a.store, { repeats: Number.MAX_SAFE_INTEGER, command: 'chatwright prefs import' });
    let added = 0, again = 0;
    try {
      for (const k of kway) {
        const id = itemId(k.prompt, k.responses);
        store.addItems([{ id, prompt: k.prompt, responses: k.responses, ...(k.model ? { model: k.model } : {}) }]);
        try {
          store.submit(k.annotator ?? a.annotator ?? `imported:${basename(file)}`, id,
            k.allBad ? { verdict: 'all-bad' } : { verdict: 'ranked', ranking: k.ranking }, { importedFrom: basename(file) });
          added++;
        } catch (e) {
          if (!(e instanceof PreferenceConflict)) throw e;
          again++; // this annotator's verdict on this item is already in the store
        }
      }
    } finally {
      store.close();
    }
    report({ file, store: a.store, records: kway.length, added, alreadyThere: again },
      `imported ${added} of ${kway.length} record(s) from ${file} into ${a.store}${again ? ` (${again} were already there)` : ''}`);
    return 0;
  }
  if (verb === 'counts') {
    const { items, records } = readStore(a.store);
    const by = (v: string) => records.filter((r) => r.verdict === v).length;
    const annotators: Record<string, number> = {};
    for (const r of records) annotators[r.annotator] = (annotators[r.annotator] ?? 0) + 1;
    const ranked = new Set(records.filter((r) => r.verdict !== 'skipped').map((r) => r.item));
    const c = { items: items.length, itemsRanked: ranked.size, ranked: by('ranked'), allBad: by('all-bad'), skipped: by('skipped'), annotators };
    report(c, `${a.store}: ${c.items} item(s), ${c.itemsRanked} with a ranking; records: ${c.ranked} ranked, ${c.allBad} all bad, ` +
      `${c.skipped} skipped; by ${Object.entries(annotators).map(([k, n]) => `${k} (${n})`).join(', ') || 'nobody yet'}`);
    return 0;
  }
  throw new UserError(verb ? `prefs: unknown verb "${verb}"` : 'prefs: what to do?', `chatwright prefs <${VERBS}> --store DIR`);
}
