#!/usr/bin/env node
// chatwright <command>: one entry point for every stage of the pipeline. Each command lives in its own module under
// src/cli/ and exports `run(argv): Promise<number>` (the exit code). Results go to stdout, progress and diagnostics to
// stderr. Errors a user can act on print a message and a hint on stderr and exit 2, never a stack trace (set
// CHATWRIGHT_DEBUG=1 to see it); anything else exits 1.
import { readFileSync } from 'node:fs';
import { formatError, UserError } from '../util/errors.js';
import { environmentText } from './args.js';

const commands: Record<string, { module: string; summary: string }> = {
  tokenizer: { module: './tokenizer.js', summary: 'train, encode and decode with a byte-level BPE tokenizer' },
  data: { module: './data.js', summary: 'prepare token shards from text, JSONL or the built-in corpora' },
  pretrain: { module: './pretrain.js', summary: 'pretrain a GPT on token shards (next-token prediction)' },
  sft: { module: './sft.js', summary: 'supervised fine-tuning on demonstration dialogues' },
  reward: { module: './reward.js', summary: 'train a reward model on ranked answers (Bradley-Terry)' },
  dpo: { module: './dpo.js', summary: 'direct preference optimisation of the SFT model on ranked answers' },
  ppo: { module: './ppo.js', summary: 'RLHF with PPO against a reward model, under a KL penalty to the SFT model' },
  grpo: { module: './grpo.js', summary: 'GRPO: group-normalised advantages against a reward model or a verifiable reward' },
  eval: { module: './eval.js', summary: 'evaluate base and fine-tuned models on held-out prompts' },
  sample: { module: './sample.js', summary: 'sample K answers per prompt for people to rank' },
  rank: { module: './rank.js', summary: 'rank sampled answers in the terminal, into a preference store' },
  label: { module: './label.js', summary: 'rank samples with the simulated labeller (rule-based, not a person)' },
  prefs: { module: './prefs.js', summary: 'export, import and count preference data (K-way, TRL pairs, Anthropic-HH)' },
  generate: { module: './generate.js', summary: 'continue a prompt with a base model' },
  chat: { module: './chat.js', summary: 'chat with a model in the terminal' },
  export: { module: './export.js', summary: 'export a model to GGUF (llama.cpp, Ollama, node-llama-cpp)' },
  info: { module: './info.js', summary: 'what a model folder or GGUF file holds: architecture, size, tokenizer, template' },
  serve: { module: './serve.js', summary: 'serve models over an OpenAI-compatible API, with a web page' },
  demo: { module: './demo.js', summary: 'the whole path on the built-in poetry corpus: pretrain, SFT, preferences, RM, DPO, PPO, GRPO, eval, chat' },
};

function usage(): string {
  const lines = ['usage: chatwright <command> [options]   (chatwright <command> --help for its options)',
    '       chatwright --version | --help', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  return lines.join('\n') + '\n\n' + environmentText();
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `chatwright ${pkg.version} (node ${process.version})`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(version());
    return 0;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (!name) {
    process.stderr.write(usage() + '\n');
    return 2;
  }
  const c = commands[name];
  if (!c) throw new UserError(`unknown command "${name}"`, 'run `chatwright --help` for the list of commands');
  const mod = (await import(c.module)) as { run(argv: string[]): Promise<number> };
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    if (process.env.CHATWRIGHT_DEBUG) console.error(e);
    console.error(formatError(e));
    process.exitCode = e instanceof UserError ? 2 : 1;
  },
);
