// `chatwright chat` in a pseudo-terminal (util-linux `script`): the interactive path, where readline owns the terminal.
// Ctrl-C during a reply stops the reply and keeps the REPL; Ctrl-C at the prompt only says how to leave; Ctrl-D leaves
// with status 0. Skipped, saying why, where `script` is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { saveModel } from '../src/model/checkpoint.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('chat in a terminal: Ctrl-C stops the reply and keeps the REPL, Ctrl-D leaves', { skip: hasScript ? false : 'util-linux `script` is not installed (needed for a pseudo-terminal)' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chatwright-pty-'));
  try {
    const texts = Array.from({ length: 20 }, (_, i) => `The sea was calm and the moon was bright ${i}. Hello, how are you today?`);
    const tokenizer = trainTokenizer(texts, { vocabSize: 300 });
    // untied embeddings: a random model then wanders greedily through ordinary tokens instead of repeating the last
    // one; zero lm-head rows for the special tokens give them logit 0, below the largest of ~290 random logits, so the
    // greedy reply never ends by itself and is long enough to interrupt
    const model = GPT.create(configFromPreset('tiny', tokenizer.vocabSize, { maxSeqLen: 2048, tiedEmbeddings: false }), 3);
    const head = model.params.get('lm_head.weight')!;
    const C = head.shape[1];
    for (const id of [tokenizer.eot, tokenizer.eos, tokenizer.bos, tokenizer.system, tokenizer.user, tokenizer.assistant, tokenizer.pad])
      head.data.fill(0, id * C, (id + 1) * C);
    saveModel(dir, model, tokenizer);

    const cmd = `'${process.execPath}' '${MAIN}' chat --model '${dir}' --max-tokens 2000 --temperature 0`;
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
      await wait(/you: $/, 'the first prompt');
      p.stdin.write('hello\r');
      await wait(/assistant: /, 'the reply to start');
      await new Promise((r) => setTimeout(r, 300));
      p.stdin.write('\x03'); // Ctrl-C mid-reply
      await wait(/\[stopped\]\n+you: $/, 'the reply to stop and a new prompt');
      p.stdin.write('\x03'); // Ctrl-C at the prompt
      await wait(/Ctrl-D or \/quit to leave/, 'the hint');
      p.stdin.write('/reset\r');
      await wait(/new conversation/, 'the reset notice');
      p.stdin.write('\x04'); // Ctrl-D
      assert.equal(await exited, 0, plain());
    } finally {
      p.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
