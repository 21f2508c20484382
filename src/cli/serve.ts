// chatwright serve: an OpenAI-compatible HTTP API and the web page (chat with the token lottery, side by side, ranking,
// runs), for one or several models. Any OpenAI client works against it: set its base URL to http://127.0.0.1:8000/v1.
//
//   chatwright serve --model runs/poems/sft
//   chatwright serve --model base=runs/poems/base --model sft=runs/poems/sft --runs runs --port 8080
//   CHATWRIGHT_API_KEY=secret chatwright serve --model runs/poems/sft --host 0.0.0.0
//   chatwright serve --store runs/poems/feedback --samples runs/poems/feedback/samples.jsonl --host 0.0.0.0 --api-key KEY
//
// With --store the server is the preference store's one writer: people rank on the page's Ranking view (or through
// /v1/feedback/*), into the same store as `chatwright rank`, several at once; a second process that opens the store for
// writing (another server, `chatwright rank`) is refused while this one runs. --store without --model serves ranking only.
//
// The URL goes to stdout once the server listens (with --port 0, the port it got); one line per request to stderr.
// Ctrl-C or SIGTERM closes it: open streams end, the process exits 0.
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { helpText, parseArgs, storeOptions, wantsHelp, type OptionsSpec, type Parsed, UsageError } from './args.js';
import { loadServedModels } from '../serve/models.js';
import { DEFAULT_LIMITS, startServer, type RunningServer } from '../serve/server.js';
import { headDim } from '../model/config.js';
import { PreferenceStore, readSamples } from '../feedback/index.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  model: { type: 'list', description: 'model directory to serve, as DIR or NAME=DIR; repeat it for several models' },
  host: { type: 'string', description: 'address to listen on (0.0.0.0 opens it to the network)', default: '127.0.0.1' },
  port: { ...int, min: 0, max: 65535, description: 'port (0: any free port)', default: 8000 },
  'api-key': { type: 'string', description: 'require `Authorization: Bearer KEY` on every route but /health (default: $CHATWRIGHT_API_KEY)' },
  cors: { type: 'string', description: 'allow browser pages of this origin (or *) to call the API (default: no CORS)' },
  ...storeOptions,
  runs: { type: 'string', description: 'runs folder the page shows curves and eval tables from, read-only (default: ./runs if it exists)' },
  'max-batch': { ...int, min: 1, max: 256, description: 'requests decoded together per model (KV cache slots, allocated at start over the whole context)', default: 8 },
  'max-queue': { ...int, min: 0, description: 'requests waiting for a slot per model; more get 503', default: 64 },
  'max-tokens': { ...int, min: 1, description: 'most new tokens per answer (default: up to the context)' },
  'max-n': { ...int, min: 1, max: 64, description: 'most choices (n) per request', default: DEFAULT_LIMITS.maxN },
  'max-messages': { ...int, min: 1, description: 'most messages per chat request', default: DEFAULT_LIMITS.maxMessages },
  'max-body': { ...int, min: 1, description: 'largest request body, in KiB', default: DEFAULT_LIMITS.maxBodyBytes / 1024 },
  timeout: { type: 'number', min: 0.001, description: 'seconds a request may take, queueing included', default: DEFAULT_LIMITS.timeoutMs / 1000 },
  log: { type: 'boolean', description: 'one line per request on stderr', default: true },
} satisfies OptionsSpec;

export async function run(argv: string[]): Promise<number> {
  const summary = 'serve models over an OpenAI-compatible API, and the ranking of sampled answers, with a web page at /';
  if (wantsHelp(argv)) {
    console.log(helpText('serve', summary, spec));
    return 0;
  }
  const a = parseArgs('serve', argv, spec);
  if (a.samples && !a.store) throw new UsageError('serve', '--samples needs --store DIR (the samples are added to a preference store)');
  if (a.model.length === 0 && !a.store) throw new UsageError('serve', '--model DIR is required (or --store DIR to serve ranking only)');
  let runsDir: string | null = null;
  if (a.runs !== undefined) {
    if (!existsSync(a.runs) || !statSync(a.runs).isDirectory()) throw new UsageError('serve', `--runs ${a.runs} is not a folder (give the folder that holds your runs, e.g. runs)`);
    runsDir = a.runs;
  } else if (existsSync('runs') && statSync('runs').isDirectory()) runsDir = 'runs';
  const apiKey = a['api-key'] ?? process.env.CHATWRIGHT_API_KEY ?? undefined;
  // the store first: a second writer is refused before any model loads
  const notice = (line: string) => process.stderr.write(`${line}\n`);
  const samples = a.samples ? readSamples(a.samples, notice) : null;
  const store = a.store ? PreferenceStore.open(a.store, { repeats: a.repeats, command: 'chatwright serve' }) : null;
  let srv: RunningServer;
  try {
    for (const r of store?.repaired ?? []) notice(r);
    const added = samples ? store!.addItems(samples) : 0;
    if (added) notice(`added ${added} new item(s) from ${a.samples} to ${a.store}`);
    srv = await listen(a, store, samples ? new Set(samples.map((i) => i.id)) : undefined, apiKey, runsDir);
  } catch (e) {
    store?.close();
    throw e;
  }
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`${sig}: closing\n`);
      void srv.close().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  store?.close();
  return 0;
}

async function listen(a: Parsed<typeof spec>, store: PreferenceStore | null, among: Set<string> | undefined, apiKey: string | undefined,
  runsDir: string | null): Promise<RunningServer> {
  const models = a.model.length ? loadServedModels(a.model, { slots: a['max-batch'], maxQueue: a['max-queue'] }) : [];
  const log = a.log ? (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`) : undefined;
  let srv;
  try {
    srv = await startServer({
      models, host: a.host, port: a.port, apiKey: apiKey || undefined, cors: a.cors, runsDir, log,
      feedback: store ? { store, among } : null,
      limits: {
        maxBodyBytes: a['max-body'] * 1024, maxMessages: a['max-messages'], maxN: a['max-n'],
        maxTokens: a['max-tokens'] ?? Math.max(1, ...models.map((m) => m.batcher.contextSize)), timeoutMs: a.timeout * 1000,
      },
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // the machine's state, not the command line's shape: a hint that says what to change (exit 2 all the same)
    if (code === 'EADDRINUSE') throw new UserError(`serve: port ${a.port} on ${a.host} is in use`, 'pick another with --port (0: any free port)');
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`serve: cannot listen on ${a.host}`, 'give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0');
    if (code === 'EACCES') throw new UserError(`serve: no permission to listen on port ${a.port}`, 'use a port above 1023');
    throw e;
  }
  for (const m of models) {
    const c = m.model.config, kvBytes = 2 * 4 * c.nLayer * a['max-batch'] * m.batcher.contextSize * c.nKvHead * headDim(c);
    process.stderr.write(`model ${m.id}: ${c.nLayer} layers, context ${m.batcher.contextSize}, ${a['max-batch']} slots ` +
      `(KV cache ${(kvBytes / 2 ** 20).toFixed(0)} MiB)\n`);
  }
  process.stderr.write(`listening on ${srv.url} (the page at /, the API at /v1)${apiKey ? '; API key required' : ''}` +
    `${runsDir ? `; runs from ${runsDir}` : ''}${a.host !== '127.0.0.1' && a.host !== 'localhost' && !apiKey ? '; WARNING: open to the network without an API key' : ''}\n`);
  if (store) {
    const c = store.counts(among);
    process.stderr.write(`ranking: ${c.pending} of ${c.items} item(s) to rank in ${a.store}${among ? ` (those of ${a.samples})` : ''}, ` +
      `${a.repeats} ranking(s) each; the page's Ranking view is ${srv.url}/#rank\n`);
  }
  console.log(srv.url);
  return srv;
}
