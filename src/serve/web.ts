// The web page's files (src/web/: plain HTML, CSS and ES modules, no build step), read once when the server starts and
// served from memory by name. A request's path is only a key into that table, never a path on disk.
// The folder is found relative to this module: src/serve/ -> ../web (running the sources), dist/src/serve/ ->
// ../../../src/web (the build; package.json's "files" ships src/web/ beside dist/, so an installed package has it too).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

export interface Asset { type: string; body: Buffer }

export function webDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const d of [join(here, '..', 'web'), join(here, '..', '..', '..', 'src', 'web')])
    if (existsSync(join(d, 'index.html'))) return d;
  throw new UserError('the web page files (src/web/index.html) are missing from this installation', 'reinstall chatwright');
}

// URL path -> asset: "/" is index.html, "/app.js" the file app.js; nothing else.
export function loadAssets(dir = webDir()): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) out.set(`/${name}`, { type, body: readFileSync(join(dir, name)) });
  }
  const index = out.get('/index.html');
  if (index) out.set('/', index);
  return out;
}
