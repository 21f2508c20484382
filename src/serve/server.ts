// The HTTP server: routes, limits, authentication, CORS and server-sent events around the API handlers (openai.ts),
// the ranking API over the preference store (feedback.ts), the runs folder (runs.ts) and the web page (web.ts).
//
//   GET  /health                 liveness and queue counts (no key needed)
//   GET  /v1/models[/ID]         POST /v1/chat/completions     POST /v1/completions
//   GET  /v1/feedback/next       POST /v1/feedback/rankings    POST /v1/feedback/undo     GET /v1/feedback/counts
//   GET  /api/runs               GET /api/runs/RUN/metrics?stage=S&since=N     GET /api/runs/RUN/eval[?stage=S]
//   GET  /, /app.js, ...         the page
//
// node:http, not hono: a dozen routes fit in one switch, SSE is res.write, and a disconnect is res's 'close' event, which
// aborts the request's generation at the next decode step. hono + @hono/node-server would add a router and the Web
// Request/Response adapter for nothing we use, and the disconnect would come through one more layer.
//
// Security defaults: binds 127.0.0.1 (--host opens it); with an API key (--api-key or CHATWRIGHT_API_KEY) every route
// but /health and the page's own files needs `Authorization: Bearer KEY` (the files carry no data; the page asks for
// the key and sends it with its calls); no CORS headers unless --cors names an origin; POST bodies must be JSON
// (Content-Type application/json), so a page on another origin cannot send one without a CORS preflight, which is
// refused; on a loopback address the Host header must be a loopback name (DNS rebinding). Errors are OpenAI's shape,
// never a stack trace.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ApiError } from './schema.js';
import { chatCompletions, completions, findModel, listModels, modelObject, type ApiContext, type ApiLimits, type Sink } from './openai.js';
import { feedbackCounts, feedbackNext, feedbackSubmit, feedbackUndo, type FeedbackContext } from './feedback.js';
import { listRuns, runEval, runMetrics } from './runs.js';
import { loadAssets, type Asset } from './web.js';
import type { ServedModel } from './models.js';

export interface ServeOptions {
  models: ServedModel[];
  host?: string; // default 127.0.0.1
  port?: number; // default 8000; 0: any free port
  apiKey?: string;
  cors?: string; // allowed origin, or '*'
  runsDir?: string | null;
  feedback?: FeedbackContext | null; // the preference store people rank into (--store); the server is its one writer
  limits?: Partial<ApiLimits & { maxBodyBytes: number }>;
  log?: (line: string) => void;
}

export const DEFAULT_LIMITS = {
  maxBodyBytes: 1 << 20, maxMessages: 256, maxN: 8, maxTokens: 4096, maxPrompts: 16, timeoutMs: 300_000,
};

export interface RunningServer { server: Server; url: string; close(): Promise<void> }

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const server = createServer(handler(o));
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8000, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    server, url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // open streams end now
    }),
  };
}

export function handler(o: ServeOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const ctx: ApiContext = { models: o.models, limits, fingerprint: 'chatwright-0.1.0' };
  const assets = loadAssets();
  const keyHash = o.apiKey ? sha256(o.apiKey) : null;
  const loopback = isLoopback(o.host ?? '127.0.0.1');
  const log = o.log ?? (() => {});

  return (req, res) => {
    const t0 = Date.now();
    res.on('finish', () => log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`));
    route(req, res).catch((e) => {
      const err = e instanceof ApiError ? e : internal(e, log);
      if (!res.headersSent) send(res, err.status, err.toJSON(), {}, o.cors);
      else if (!res.writableEnded) {
        res.write(`data: ${JSON.stringify(err.toJSON())}\n\n`);
        res.end();
      }
    });
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (loopback && !loopbackHost(req.headers.host))
      throw new ApiError(403, `Host ${JSON.stringify(req.headers.host ?? '')} is not a loopback name; this server listens on a loopback address`,
        'invalid_request_error', null, 'forbidden_host');
    if (o.cors) {
      res.setHeader('Access-Control-Allow-Origin', o.cors);
      res.setHeader('Vary', 'Origin');
      if (method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type',
          'Access-Control-Max-Age': '600',
        });
        res.end();
        return;
      }
    }
    if (path === '/health') return only(method, 'GET', () => send(res, 200, health(o.models), {}, o.cors));
    const asset = method === 'GET' || method === 'HEAD' ? assets.get(path) : undefined;
    if (asset) return sendAsset(res, asset);
    checkKey(req);
    const disconnect = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) disconnect.abort();
    });
    const m = /^\/v1\/models\/(.+)$/.exec(path);
    if (path === '/v1/models') return only(method, 'GET', () => send(res, 200, listModels(ctx)));
    if (m) return only(method, 'GET', () => send(res, 200, modelObject(findModel(ctx, decodeURIComponent(m[1])))));
    if (path === '/v1/chat/completions') return post(method, req, res, (body) => chatCompletions(ctx, body, sink(res), disconnect.signal));
    if (path === '/v1/completions') return post(method, req, res, (body) => completions(ctx, body, sink(res), disconnect.signal));
    if (path.startsWith('/v1/feedback/')) return feedbackRoute(method, req, res, path, url.searchParams);
    if (path.startsWith('/api/runs')) return only(method, 'GET', () => runsRoute(res, path, url.searchParams));
    throw new ApiError(404, `Unknown request URL: ${method} ${path}`, 'invalid_request_error', null, 'unknown_url');
  }

  async function only(method: string, want: string, f: () => void | Promise<void>): Promise<void> {
    if (method !== want) throw new ApiError(405, `${method} is not allowed here; use ${want}`, 'invalid_request_error', null, 'method_not_allowed');
    await f();
  }

  async function post(method: string, req: IncomingMessage, res: ServerResponse, f: (body: unknown) => Promise<void>): Promise<void> {
    if (method !== 'POST') throw new ApiError(405, `${method} is not allowed here; use POST`, 'invalid_request_error', null, 'method_not_allowed');
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json')
      throw new ApiError(415, `Content-Type must be application/json, got ${JSON.stringify(type)}; e.g. curl -H 'Content-Type: application/json'`,
        'invalid_request_error', null, 'unsupported_media_type');
    const text = await readBody(req, res, limits.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `We could not parse the JSON body of your request: ${(e as Error).message}`, 'invalid_request_error', null, 'invalid_json');
    }
    await f(body);
  }

  function checkKey(req: IncomingMessage): void {
    if (!keyHash) return;
    const auth = req.headers.authorization ?? '';
    const given = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    if (!given) throw new ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", 'invalid_request_error', null, 'invalid_api_key');
    if (!timingSafeEqual(sha256(given), keyHash)) throw new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
  }

  async function feedbackRoute(method: string, req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    const fb = o.feedback;
    const route = path.slice('/v1/feedback/'.length);
    if (!['next', 'counts', 'rankings', 'undo'].includes(route))
      throw new ApiError(404, `Unknown request URL: ${method} ${path}`, 'invalid_request_error', null, 'unknown_url');
    if (!fb) throw new ApiError(404, 'this server has no preference store; start it with --store DIR (and --samples FILE to add items)',
      'invalid_request_error', null, 'no_feedback_store');
    if (route === 'next') return only(method, 'GET', () => send(res, 200, feedbackNext(fb, q)));
    if (route === 'counts') return only(method, 'GET', () => send(res, 200, feedbackCounts(fb, q)));
    if (route === 'rankings') return post(method, req, res, async (body) => send(res, 200, feedbackSubmit(fb, body)));
    return post(method, req, res, async (body) => send(res, 200, feedbackUndo(fb, body)));
  }

  function runsRoute(res: ServerResponse, path: string, q: URLSearchParams): void {
    const root = o.runsDir;
    if (!root) throw new ApiError(404, 'this server has no runs folder; start it with --runs DIR', 'invalid_request_error', null, 'no_runs_folder');
    if (path === '/api/runs' || path === '/api/runs/') return send(res, 200, { runs: listRuns(root) });
    const m = /^\/api\/runs\/([^/]+)\/(metrics|eval)$/.exec(path);
    if (!m) throw new ApiError(404, `Unknown request URL: GET ${path}`, 'invalid_request_error', null, 'unknown_url');
    const run = safeDecode(m[1]);
    const stage = q.get('stage');
    const notFound = () => new ApiError(404, `no ${m[2]} for run ${JSON.stringify(run)}${stage ? ` stage ${JSON.stringify(stage)}` : ''} in the runs folder`,
      'invalid_request_error', stage ? 'stage' : 'run', 'not_found');
    if (m[2] === 'metrics') {
      if (!stage) throw new ApiError(400, "'stage' is required", 'invalid_request_error', 'stage', 'missing_required_parameter');
      const since = Number(q.get('since') ?? 0);
      if (!Number.isInteger(since) || since < 0) throw new ApiError(400, `'since' must be an integer >= 0, got ${q.get('since')}`, 'invalid_request_error', 'since', 'invalid_value');
      const r = runMetrics(root, run, stage, since);
      if (!r) throw notFound();
      return send(res, 200, r);
    }
    const r = runEval(root, run, stage);
    if (r === null) throw notFound();
    send(res, 200, r);
  }

  function sink(res: ServerResponse): Sink {
    return {
      json: (status, body, headers) => send(res, status, body, headers ?? {}),
      startStream: (headers) => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no', ...headers });
        res.flushHeaders();
      },
      event: (data) => {
        if (!res.writableEnded) res.write(`data: ${data === '[DONE]' ? data : JSON.stringify(data)}\n\n`);
      },
      end: () => res.end(),
    };
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, cors?: string): void {
  if (res.headersSent || res.destroyed) return;
  if (cors && !res.hasHeader('Access-Control-Allow-Origin')) res.setHeader('Access-Control-Allow-Origin', cors);
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendAsset(res: ServerResponse, a: Asset): void {
  res.writeHead(200, {
    'Content-Type': a.type, 'Content-Length': a.body.length, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
  });
  res.end(a.body);
}

function health(models: ServedModel[]): unknown {
  const stats = models.map((m) => ({ id: m.id, ...m.batcher.stats }));
  return { status: 'ok', models: stats };
}

// The body, up to max bytes. Past that: 413 at once, with Connection: close; the rest of the body is read and dropped
// (so the client is not cut off mid-upload and can read the 413) up to 16 times the limit, then the socket is closed.
function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0, over = false;
    const refuse = () => {
      over = true;
      res.setHeader('Connection', 'close');
      reject(new ApiError(413, `the request body is over this server's limit of ${max} bytes`, 'invalid_request_error', null, 'request_too_large'));
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) refuse();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (over) {
        if (size > 16 * max) req.destroy();
        return;
      }
      if (size > max) refuse();
      else parts.push(chunk);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      if (!over) resolve(Buffer.concat(parts).toString('utf8'));
    });
    req.on('error', (e) => {
      if (!over) reject(e);
    });
    req.on('close', () => {
      if (!ended && !over) reject(new ApiError(400, 'the client closed the connection before the body was complete'));
    });
  });
}

function internal(e: unknown, log: (s: string) => void): ApiError {
  log(`internal error: ${(e as Error)?.stack ?? String(e)}`);
  return new ApiError(500, `the server failed: ${(e as Error)?.message ?? String(e)}`, 'server_error', null, 'internal_error');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ApiError(400, 'the run id is not valid percent-encoding', 'invalid_request_error', 'run', 'invalid_value');
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function loopbackHost(h: string | undefined): boolean {
  if (!h) return false;
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
  return isLoopback(name.toLowerCase());
}
