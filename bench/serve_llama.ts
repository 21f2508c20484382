// The llama.cpp peer of bench/serve.ts: the same model, exported to GGUF, decoded by llama.cpp through node-llama-cpp
// behind a minimal OpenAI-style streaming endpoint, run as a child process as `chatwright serve` is, so the same clients
// measure both over HTTP. node-llama-cpp is a library, not a server: this file is the thinnest server that lets the
// clients reach it (POST /v1/chat/completions, stream only; the fields the bench sends: messages, max_tokens,
// temperature, seed).
//
//   node dist/bench/serve_llama.js --gguf model.gguf --model DIR --slots 32 --threads 2     (bench/serve.ts starts it)
//
// What is the same as ours: the prompt ids (the model folder's own tokenizer renders the chat, so both servers prefill
// the same tokens), one KV sequence of the model's context per slot (llama.cpp's context of `slots` sequences; requests
// beyond the slots wait for one), the thread count, and the work per request: every answer runs to max_tokens (ours
// bans the end-of-turn tokens through logit_bias; here yieldEogToken keeps generating past them). Concurrent sequences
// decode together: node-llama-cpp queues each sequence's next token and evaluates them in one llama_decode batch, which
// is continuous batching as llama-server does it. The sampler is llama.cpp's with node-llama-cpp's defaults beside the
// temperature and seed sent.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadModel } from '../src/model/checkpoint.js';
import type { Message } from '../src/tokenizer/index.js';

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= argv.length) throw new Error(`serve_llama: --${name} is required`);
  return argv[i + 1];
};

// the part of node-llama-cpp's API used here (its types come with the package, a devDependency that may be absent)
interface Sequence {
  evaluate(tokens: number[], o: { temperature: number; seed?: number; yieldEogToken: boolean }): AsyncGenerator<number>;
  clearHistory(): Promise<void>;
}
interface Context { getSequence(): Sequence }
interface Model { createContext(o: object): Promise<Context> }
interface Llama { loadModel(o: object): Promise<Model> }

async function main() {
  const slots = Number(arg('slots')), threads = Number(arg('threads'));
  const { model: ours, tokenizer } = loadModel(arg('model'));
  if (!tokenizer) throw new Error('serve_llama: the model folder has no tokenizer');
  const pkg = 'node-llama-cpp';
  const { getLlama } = (await import(pkg)) as { getLlama(o: object): Promise<Llama> };
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: arg('gguf'), gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: ours.config.maxSeqLen, sequences: slots, threads, batchSize: 512 });
  const free: Sequence[] = Array.from({ length: slots }, () => ctx.getSequence());
  const waiting: ((s: Sequence) => void)[] = [];
  const acquire = () => new Promise<Sequence>((resolve) => (free.length ? resolve(free.pop()!) : waiting.push(resolve)));
  const release = async (s: Sequence) => {
    await s.clearHistory();
    const next = waiting.shift();
    if (next) next(s);
    else free.push(s);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(e), type: 'server_error', param: null, code: null } }));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404).end();
      return;
    }
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text) as { messages: Message[]; max_tokens: number; temperature?: number; seed?: number };
    const ids = tokenizer!.renderForCompletion(body.messages);
    const seq = await acquire();
    try {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const decoder = tokenizer!.streamDecoder();
      const event = (o: object) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      let n = 0;
      for await (const id of seq.evaluate(ids, { temperature: body.temperature ?? 1, seed: body.seed, yieldEogToken: true })) {
        const delta = decoder.push(id);
        if (delta) event({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: delta }, finish_reason: null }] });
        if (++n >= body.max_tokens) break;
      }
      event({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'length' }] });
      event({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: ids.length, completion_tokens: n, total_tokens: ids.length + n } });
      res.end('data: [DONE]\n\n');
    } finally {
      await release(seq);
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
