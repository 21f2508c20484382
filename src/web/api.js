// The page's calls to its own server: JSON requests with the API key (when the server wants one), and the streamed
// chat completions read as server-sent events. Errors come back in OpenAI's shape; they are thrown as ApiError with the
// server's message, which the views show as they are.

const KEY = 'chatwright-api-key';
let key = sessionStorage.getItem(KEY) || '';
let onNeedKey = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || null;
    this.param = body?.error?.param || null;
  }
}

export function setKey(k) {
  key = k;
  sessionStorage.setItem(KEY, k);
}

// Called on a 401, so the page can ask for the key.
export function whenKeyNeeded(f) {
  onNeedKey = f;
}

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: the status says enough
  }
  if (res.status === 401) onNeedKey();
  return new ApiError(res.status, body);
}

export async function getJson(path, signal) {
  const res = await fetch(path, { headers: headers(false), signal });
  if (!res.ok) throw await failure(res);
  return res.json();
}

// POST a streamed request; yields each event's JSON, ends at [DONE]. An error event (the server's time limit) throws.
// Aborting `signal` closes the connection, which stops the generation on the server at its next step.
export async function* stream(path, body, signal, onHeaders = () => {}) {
  const res = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify({ ...body, stream: true }), signal });
  if (!res.ok) throw await failure(res);
  onHeaders(res.headers);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      const json = JSON.parse(data);
      if (json.error) throw new ApiError(200, json);
      yield json;
    }
  }
}

export async function models() {
  return (await getJson('/v1/models')).data;
}

export async function postJson(path, body) {
  const res = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body) });
  if (!res.ok) throw await failure(res);
  return res.json();
}
