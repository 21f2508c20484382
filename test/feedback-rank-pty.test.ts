// `chatwright rank` in a pseudo-terminal (util-linux `script`), where readline owns the terminal: the prompt shows, the
// help, an order, undo, and Ctrl-C leaves with everything typed so far saved. Skipped, saying why, without `script`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readStore } from '../src/feedback/index.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('rank in a terminal: prompt, help, an order, undo, Ctrl-C leaves and keeps what was saved', { skip: hasScript ? false : 'util-linux `script` is not installed (needed for a pseudo-terminal)' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chatwright-rank-pty-'));
  try {
    const samples = join(dir, 'samples.jsonl');
    const item = (i: number) => ({ prompt: [{ role: 'user', content: `写一首五言绝句，题目是《题${i}》` }], responses: [`甲${i}`, `乙${i}`, `丙${i}`] });
    writeFileSync(samples, [item(1), item(2)].map((x) => JSON.stringify(x)).join('\n') + '\n');
    const store = join(dir, 'store');
    const cmd = `'${process.execPath}' '${MAIN}' rank --samples '${samples}' --store '${store}' --annotator pty`;
    const p = spawn('script', ['-q', '-c', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    const plain = () => out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '');
    const t0 = Date.now();
    const wait = async (re: RegExp, what: string) => {
      while (!re.test(plain())) {
        if (Date.now() - t0 > 20_000) throw new Error(`timed out waiting for ${what}; the terminal shows:\n${plain()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await wait(/题1[\s\S]*3\) 丙1\norder \(best first\)> $/, 'the first item and the prompt');
      p.stdin.write('?\r');
      await wait(/undo {8}take back your last ranking/, 'the help');
      p.stdin.write('3 1 2\r');
      await wait(/saved: 3 > 1 > 2\n[\s\S]*题2[\s\S]*order \(best first\)> $/, 'the ranking saved and the second item');
      p.stdin.write('undo\r');
      await wait(/undone: 3 > 1 > 2; here it is again\n[\s\S]*题1[\s\S]*order \(best first\)> $/, 'the first item again');
      p.stdin.write('2=3 1\r');
      await wait(/saved: 2 = 3 > 1\n[\s\S]*题2[\s\S]*order \(best first\)> $/, 'the second item again');
      p.stdin.write('\x03'); // Ctrl-C: leave; the item on screen is not ranked
      await wait(/stopped; 2 saved, 1 undone this session; 1 of 2 done, 1 to go/, 'the goodbye');
      assert.equal(await exited, 0, plain());
    } finally {
      p.kill();
    }
    const recs = readStore(store).records;
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0].ranking, [[1, 2], 0]);
    assert.equal(recs[0].annotator, 'pty');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
