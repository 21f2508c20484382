// Wrong arguments to every command, as a user meets them (child processes of the real CLI): an unknown flag, a missing
// value, a number that is not one, a value out of range, a file where a folder is expected (and a folder where a file
// is): each gives one clear error line (plus its HINT) on stderr, nothing on stdout, exit 2, never a stack trace.
// The commands, their subcommands and their options are read from `chatwright --help` and each `--help`, so a command
// added later is covered without touching this file. Also: --version, --help (value types, defaults, the environment
// variables) and the usage on stderr when the command is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ENV_VARS = ['CHATWRIGHT_BACKEND', 'CHATWRIGHT_THREADS', 'CHATWRIGHT_CPU', 'CHATWRIGHT_DEBUG'];
const cliSync = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });

interface Run { args: string[]; status: number | null; stdout: string; stderr: string }
function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ args, status, stdout, stderr });
    });
  });
}
// a few at a time: each is a node start-up
async function cliAll(cases: string[][], parallel = 4): Promise<Run[]> {
  const out: Run[] = new Array(cases.length);
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let i = next++; i < cases.length; i = next++) out[i] = await cli(cases[i]);
  }));
  return out;
}

let root = '', aFile = '', aDir = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-cli-args-'));
  aFile = join(root, 'a-file.txt');
  writeFileSync(aFile, 'not a folder\n');
  aDir = root;
});
after(() => rmSync(root, { recursive: true, force: true }));

interface Option { name: string; value: string; min?: number; integer: boolean }
interface Invocation { words: string[]; options: Option[] }

// "chatwright <words>: summary" headings and the option lines under them, from a --help text
function parseHelp(text: string): Invocation[] {
  const out: Invocation[] = [];
  let cur: Invocation | null = null;
  for (const line of text.split('\n')) {
    const h = /^chatwright ([a-z][a-z ]*): /.exec(line);
    if (h) {
      out.push((cur = { words: h[1].split(' '), options: [] }));
      continue;
    }
    const o = /^ {2}--([a-z][a-z0-9-]*)(?: (DIR|FILE|PATH|NAME|TEXT|JSON|LIST|INT|NUM)(?: >= (-?[\d.e]+)| in \[(-?[\d.e]+), [^\]]+\])?)?\s/.exec(line);
    if (o && cur && o[1] !== 'help') {
      const min = o[3] ?? o[4];
      cur.options.push({ name: o[1], value: o[2] ?? '', min: min === undefined ? undefined : Number(min), integer: o[2] === 'INT' });
    }
  }
  return out;
}

function commandsOf(help: string): string[] {
  const at = help.indexOf('commands:');
  assert.ok(at >= 0, help);
  return help.slice(at).split('\n').slice(1).map((l) => /^ {2}([a-z]+) /.exec(l)?.[1]).filter((x): x is string => !!x);
}

function expectUsageError(r: Run, want: RegExp): string | null {
  const lines = r.stderr.trimEnd().split('\n');
  const what = `chatwright ${r.args.join(' ')}`;
  if (r.status !== 2) return `${what}: exit ${r.status}, expected 2\n${r.stderr}`;
  if (r.stdout !== '') return `${what}: printed on stdout: ${r.stdout.slice(0, 200)}`;
  if (!/^error: /.test(lines[0])) return `${what}: the first stderr line is not an error: ${lines[0]}`;
  if (lines.length > 2 || (lines.length === 2 && !/^HINT: /.test(lines[1]))) return `${what}: more than the error and its hint:\n${r.stderr}`;
  if (/\n\s+at /.test(r.stderr)) return `${what}: a stack trace`;
  if (!want.test(lines[0])) return `${what}: "${lines[0]}" does not match ${want}`;
  return null;
}

test('chatwright --version, --help, and no command (usage on stderr, exit 2)', () => {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'));
  const v = cliSync(['--version']);
  assert.equal(v.status, 0);
  assert.match(v.stdout, new RegExp(`^chatwright ${pkg.version.replace(/\./g, '\\.')} `));
  const h = cliSync(['--help']);
  assert.equal(h.status, 0);
  assert.ok(commandsOf(h.stdout).length >= 8, h.stdout);
  for (const e of ENV_VARS) assert.ok(h.stdout.includes(e), `--help does not name ${e}`);
  const none = cliSync([]);
  assert.equal(none.status, 2);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /^usage: chatwright <command>/);
  const bad = cliSync(['no-such-command']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^error: unknown command "no-such-command"\nHINT: /);
});

test('every command: --help lists typed options with the environment; wrong arguments give one error line and exit 2', async () => {
  const commands = commandsOf(cliSync(['--help']).stdout);
  const invocations: Invocation[] = [];
  for (const c of commands) {
    const h = cliSync([c, '--help']);
    assert.equal(h.status, 0, `${c} --help: exit ${h.status}\n${h.stderr}`);
    assert.equal(h.stderr, '', `${c} --help wrote to stderr`);
    for (const e of ENV_VARS) assert.ok(h.stdout.includes(e), `${c} --help does not name ${e}`);
    const found = parseHelp(h.stdout);
    assert.ok(found.length > 0 && found.every((i) => i.words[0] === c), `${c} --help has no "chatwright ${c}...:" heading`);
    for (const inv of found) assert.ok(inv.options.length > 0, `chatwright ${inv.words.join(' ')}: no options parsed from --help`);
    invocations.push(...found);
  }
  const cases: [string[], RegExp][] = [];
  for (const inv of invocations) {
    const w = inv.words;
    if (w.length > 1) cases.push([[w[0], 'no-such-subcommand'], /unknown subcommand/]);
    cases.push([[...w, '--no-such-option'], /unknown option --no-such-option/]);
    cases.push([[...w, '--no-such-option=1'], /unknown option --no-such-option/]);
    const valued = inv.options.filter((o) => o.value !== '');
    if (valued.length) cases.push([[...w, `--${valued[valued.length - 1].name}`], /needs a value/]);
    const num = inv.options.find((o) => o.value === 'INT' || o.value === 'NUM');
    if (num) cases.push([[...w, `--${num.name}`, 'abc'], /takes a number/]);
    const ranged = inv.options.find((o) => o.min !== undefined);
    if (ranged) cases.push([[...w, `--${ranged.name}`, String(ranged.min! - 1)], /must be at least/]);
    const integer = inv.options.find((o) => o.integer);
    if (integer) cases.push([[...w, `--${integer.name}`, String((integer.min ?? 0) + 1.5)], /takes an integer/]);
    for (const o of inv.options) {
      if (o.value === 'DIR') cases.push([[...w, `--${o.name}`, aFile], /must be a folder, but .* is a file/]);
      if (o.value === 'FILE') cases.push([[...w, `--${o.name}`, aDir], /must be a file, but .* is a folder/]);
    }
  }
  const runs = await cliAll(cases.map(([args]) => args));
  const problems = runs.map((r, i) => expectUsageError(r, cases[i][1])).filter((p): p is string => p !== null);
  console.log(`# ${invocations.length} invocations of ${commands.length} commands, ${cases.length} wrong command lines`);
  assert.deepEqual(problems, []);
});
