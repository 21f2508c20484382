// A tiny run folder every training stage's test can start from (not a test file): a tokenizer and a tiny base model
// trained on nothing, demonstrations of a learnable poem task, and helpers to drive the real CLI in a child process.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { GPT } from '../src/model/gpt.js';
import { saveModel } from '../src/model/checkpoint.js';
import { demosToJsonl, type Conversation } from '../src/train/demos.js';

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// "write a five-character quatrain titled X", answered by 4 lines of 5 characters, each one of the four lines of Du Fu's
// 绝句 in a random order: a tiny model learns the form within a few hundred steps.
const HAN = '春风花草香江山丽日长泥融飞燕子沙暖睡鸳鸯';
export const LINES = ['迟日江山丽', '春风花草香', '泥融飞燕子', '沙暖睡鸳鸯'];
export function rand(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s = Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 >>> 0) / 2 ** 32);
}
export function poemPrompt(i: number): string {
  const r = rand(i * 7919 + 1);
  return `写一首五言绝句，题目是《${HAN[Math.floor(r() * HAN.length)]}${HAN[Math.floor(r() * HAN.length)]}》`;
}
export function poemAnswer(r: () => number): string {
  const line = () => LINES[Math.floor(r() * LINES.length)];
  return `${line()}，${line()}。\n${line()}，${line()}。`;
}
export function poem(i: number): Conversation {
  return { messages: [{ role: 'user', content: poemPrompt(i) }, { role: 'assistant', content: poemAnswer(rand(i * 104729 + 7)) }] };
}

let tokCache: Tokenizer | null = null;
export function fixtureTokenizer(): Tokenizer {
  tokCache ??= trainTokenizer(Array.from({ length: 160 }, (_, i) => poem(i)).flatMap((c) => c.messages.map((m) => m.content)), { vocabSize: 360 });
  return tokCache;
}

export function tinyModel(seed = 1, extra: { scalarHead?: boolean } = {}): GPT {
  return GPT.create({
    arch: 'llama', vocabSize: fixtureTokenizer().vocabSize, nLayer: 2, nHead: 2, nKvHead: 2, nEmbd: 64, intermediateSize: 128,
    maxSeqLen: 96, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true, ...extra,
  }, seed);
}

export interface StageFixture { dir: string; base: string; demos: string; val: string }

// dir/base: a tiny untrained model with its tokenizer; dir/demos.jsonl, dir/val.jsonl: the poem task.
export function makeFixture(dir: string): StageFixture {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, 'base');
  saveModel(base, tinyModel(), fixtureTokenizer());
  writeFileSync(join(dir, 'demos.jsonl'), demosToJsonl(Array.from({ length: 160 }, (_, i) => poem(i))));
  writeFileSync(join(dir, 'val.jsonl'), demosToJsonl(Array.from({ length: 16 }, (_, i) => poem(1000 + i))));
  return { dir, base, demos: join(dir, 'demos.jsonl'), val: join(dir, 'val.jsonl') };
}

export function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

// Runs the CLI in a child and sends `signal` once its output (stdout and stderr) matches `when`; resolves with the exit
// code and everything it printed.
export function runAndSignal(args: string[], when: RegExp, signal: NodeJS.Signals, env: Record<string, string> = {}):
  Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; sent: boolean }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '', sent = false;
  const on = (d: Buffer) => {
    output += d;
    if (!sent && when.test(output)) {
      sent = true;
      child.kill(signal);
    }
  };
  child.stdout.on('data', on);
  child.stderr.on('data', on);
  return new Promise((resolve) => child.on('close', (code, sig) => resolve({ code, signal: sig, output, sent })));
}

// A synthetic preference: of two answers to the same prompt, the one that contains the line 泥融飞燕子 is preferred.
// Per prompt: 2 answers with it, 2 without, and the 4 pairs between the classes (pairs format of TRL).
export const PREFERRED_LINE = LINES[2];
export function synthAnswer(r: () => number, withLine: boolean): string {
  const others = LINES.filter((l) => l !== PREFERRED_LINE);
  const lines = Array.from({ length: 4 }, () => others[Math.floor(r() * others.length)]);
  if (withLine) lines[Math.floor(r() * 4)] = PREFERRED_LINE;
  return `${lines[0]}，${lines[1]}。\n${lines[2]}，${lines[3]}。`;
}
export function writePreferences(path: string, prompts: number, first = 0): void {
  const out: string[] = [];
  for (let i = first; i < first + prompts; i++) {
    const r = rand(i * 31 + 5);
    const prompt = [{ role: 'user', content: poemPrompt(i) }];
    const good = [synthAnswer(r, true), synthAnswer(r, true)], bad = [synthAnswer(r, false), synthAnswer(r, false)];
    for (const chosen of good) for (const rejected of bad) out.push(JSON.stringify({ prompt, chosen, rejected }));
  }
  writeFileSync(path, out.join('\n') + '\n');
}

// A verifiable toy reward for RL tests: 1 when the answer contains the preferred line, else 0 (a JS module, as a user's
// `--reward FILE.mjs`), and a prompts file of the poem task.
export function writeRewardModule(path: string): void {
  writeFileSync(path, `export function reward(prompt, answer) { return answer.includes(${JSON.stringify(PREFERRED_LINE)}) ? 1 : 0; }\n`);
}
export function writePrompts(path: string, n: number, first = 0): void {
  writeFileSync(path, Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: poemPrompt(first + i) }) + '\n').join(''));
}

// The SFT model of RL and DPO tests: fine-tuned on answers of both kinds (half contain the preferred line), so it writes
// either and a preference or a reward has room to act.
export function mixedDemos(path: string, n = 200): void {
  writeFileSync(path, demosToJsonl(Array.from({ length: n }, (_, i) => ({ messages: [
    { role: 'user' as const, content: poemPrompt(i) }, { role: 'assistant' as const, content: synthAnswer(rand(i + 3), i % 2 === 0) }] }))));
}
