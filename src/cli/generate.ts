// chatwright generate: continue a prompt with a (base) model, streamed to stdout. The sampling options are shared with
// `chatwright chat` (samplingSpec below); --explain shows, for each token, the candidates and the one drawn.
//
//   chatwright generate --model runs/demo/base --prompt "春眠不觉晓" --max-tokens 64
//   chatwright generate --model runs/demo/base --prompt "The sea" --temperature 0 --explain
//   chatwright generate --model runs/demo/base --prompt "春" --dtype q8_0      (8-bit weights: faster decoding)
//
// The prompt is <|bos|> + the encoded text (what pretraining documents start with); stats go to stderr.
import { performance } from 'node:perf_hooks';
import { UserError } from '../util/errors.js';
import { helpText, oneOf, parseArgs, wantsHelp, UsageError, type OptionsSpec } from './args.js';
import { loadModel } from '../model/checkpoint.js';
import type { GPT } from '../model/gpt.js';
import { WEIGHT_DTYPES, type WeightDtype } from '../tensor/quant.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { generateStream, renderExplain, resolveSampling, tokenTextOf, type SamplingOptions } from '../generate/index.js';

// One description per option, for both generate and chat.
export const samplingSpec = {
  temperature: { type: 'number', description: 'sampling temperature in [0, 2]; 0 = greedy (argmax)', default: 1, min: 0, max: 2 },
  'top-k': { type: 'number', description: 'keep the k most likely tokens (0 = off)', default: 0, integer: true, min: 0 },
  'top-p': { type: 'number', description: 'nucleus: keep the most likely tokens up to this probability mass (1 = off)', default: 1, min: 0, max: 1 },
  'min-p': { type: 'number', description: 'keep tokens at least this fraction as likely as the top one (0 = off)', default: 0, min: 0, max: 1 },
  'repetition-penalty': { type: 'number', description: 'CTRL repetition penalty over the context (1 = off; 1.2 is typical)', default: 1, min: 0 },
  'presence-penalty': { type: 'number', description: 'OpenAI presence penalty over generated tokens, in [-2, 2]', default: 0, min: -2, max: 2 },
  'frequency-penalty': { type: 'number', description: 'OpenAI frequency penalty over generated tokens, in [-2, 2]', default: 0, min: -2, max: 2 },
  'logit-bias': { type: 'string', value: 'JSON', description: 'JSON object of token id -> bias in [-100, 100], e.g. \'{"5": -100}\' bans token 5' },
  seed: { type: 'number', description: 'random seed for the draws (default: a fresh one, printed to stderr)', integer: true },
  'max-tokens': { type: 'number', description: 'maximum number of new tokens', default: 256, integer: true, min: 1 },
  explain: { type: 'boolean', description: 'for each token, show the top candidates, their probabilities and the one drawn', default: false },
  'explain-top': { type: 'number', description: 'candidates shown per token with --explain', default: 5, integer: true, min: 1, max: 50 },
} satisfies OptionsSpec;

type SamplingArgs = { [K in Exclude<keyof typeof samplingSpec, 'explain' | 'explain-top'>]: unknown };

export function samplingFrom(a: SamplingArgs): Required<Omit<SamplingOptions, 'logitBias'>> & Pick<SamplingOptions, 'logitBias'> {
  let logitBias: Record<number, number> | undefined;
  if (a['logit-bias'] !== undefined) {
    try {
      logitBias = JSON.parse(a['logit-bias'] as string);
    } catch {
      throw new UserError(`--logit-bias is not valid JSON: ${a['logit-bias']}`, 'give an object like \'{"5": -100, "17": 2.5}\'');
    }
    if (typeof logitBias !== 'object' || logitBias === null || Array.isArray(logitBias))
      throw new UserError('--logit-bias must be a JSON object of token id -> bias', 'give an object like \'{"5": -100}\'');
  }
  return {
    logitBias,
    temperature: a.temperature as number, topK: a['top-k'] as number, topP: a['top-p'] as number,
    minP: a['min-p'] as number, repetitionPenalty: a['repetition-penalty'] as number,
    presencePenalty: a['presence-penalty'] as number, frequencyPenalty: a['frequency-penalty'] as number,
    seed: (a.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31),
  };
}

// The model options of generate and chat (one description each).
export const modelSpec = {
  model: { type: 'string', value: 'PATH', description: 'model directory (config.json, model.safetensors, tokenizer.json) or a .gguf file' },
  dtype: { type: 'string', value: 'NAME', description: 'inference weights: f32, bf16 (half the bytes) or q8_0 (llama.cpp 8-bit blocks, 34 bytes per 32 weights); decoding reads every weight per token, so fewer bytes decode faster', default: 'f32' },
} satisfies OptionsSpec;

// Loads a model to generate with, its weights converted to `dtype` for inference (GPT.setInferenceDtype, which is
// what a library caller such as the server uses).
export function loadChatModel(dir: string | undefined, command: string, dtype = 'f32'): { model: GPT; tokenizer: Tokenizer } {
  const dt = oneOf<WeightDtype>(command, 'dtype', dtype, WEIGHT_DTYPES) ?? 'f32';
  if (!dir) throw new UsageError(command, '--model DIR is required (a model directory, e.g. runs/demo/sft)');
  const { model, tokenizer, info } = loadModel(dir);
  if (info.note) process.stderr.write(`note: ${info.note}\n`);
  if (!tokenizer) throw new UserError(`no tokenizer in ${dir}`, 'copy tokenizer.json and tokenizer_config.json into the model directory');
  if (model.config.scalarHead) throw new UserError(`${dir} is a reward/value model (scalar head); it cannot generate`);
  if (dt !== 'f32') {
    const { bytes, float32 } = model.setInferenceDtype(dt);
    process.stderr.write(`[weights in ${dt}: ${(bytes / 2 ** 20).toFixed(1)} MiB read per token` +
      (float32.length ? `; kept in f32 (width not a multiple of 32): ${float32.join(', ')}` : '') + ']\n');
  }
  return { model, tokenizer };
}

const spec = {
  ...modelSpec,
  prompt: { type: 'string', value: 'TEXT', description: 'the text to continue' },
  stop: { type: 'string', value: 'TEXT', description: 'a stop string, or a JSON array of them; not included in the output' },
  bos: { type: 'boolean', description: 'start the prompt with the beginning-of-text token (when the tokenizer adds one; Qwen has none)', default: true },
  json: { type: 'boolean', description: 'print the result (text, ids, finish reason, logprobs) as JSON instead of streaming', default: false },
  logprobs: { type: 'number', description: 'with --json: top alternatives per token (0..20)', default: 0, integer: true, min: 0, max: 20 },
  ...samplingSpec,
} satisfies OptionsSpec;

export async function run(argv: string[]): Promise<number> {
  const summary = 'continue a prompt with a base model';
  if (wantsHelp(argv)) {
    console.log(helpText('generate', summary, spec, 'chatwright generate --model DIR --prompt TEXT [options]'));
    return 0;
  }
  const a = parseArgs('generate', argv, spec);
  if (a._.length) throw new UsageError('generate', `unexpected argument "${a._[0]}"`);
  if (a.prompt === undefined) throw new UsageError('generate', '--prompt TEXT is required');
  const { model, tokenizer } = loadChatModel(a.model, 'generate', a.dtype);
  const stop = parseStop(a.stop);
  const sampling = samplingFrom(a);
  resolveSampling(sampling, model.config.vocabSize); // bad options fail before any output
  const promptIds = [...(a.bos && tokenizer.addBos ? [tokenizer.bos] : []), ...tokenizer.encode(a.prompt)];
  const color = process.stdout.isTTY && !process.env.NO_COLOR;
  const t0 = performance.now();
  let tFirst = 0;
  const stream = generateStream(model, tokenizer, promptIds, {
    ...sampling, maxNewTokens: a['max-tokens'], stop, logprobs: a.logprobs, explain: a.explain ? a['explain-top'] : 0,
  });
  if (!a.json && !a.explain) process.stdout.write(a.prompt);
  let i = 0;
  for await (const chunk of stream) {
    if (tFirst === 0) tFirst = performance.now();
    if (chunk.result) {
      const r = chunk.result;
      if (a.json) console.log(JSON.stringify({ text: r.text, ids: r.ids, finish_reason: r.finishReason, prompt_tokens: r.promptTokens,
        completion_tokens: r.completionTokens, seed: sampling.seed, logprobs: r.steps.map((s) => ({ id: s.id, token: tokenizer.decode([s.id]),
          logprob: s.logprob, top: s.top?.map((t) => ({ id: t.id, token: tokenizer.decode([t.id]), logprob: t.logprob })) })) }));
      else if (a.explain) console.log(`\n${a.prompt}${r.text}`);
      else process.stdout.write(chunk.delta + '\n');
      const dt = (performance.now() - tFirst) / 1000;
      process.stderr.write(`[${r.finishReason}: ${r.completionTokens} tokens, prefill ${r.promptTokens} tokens in ` +
        `${((tFirst - t0) / 1000).toFixed(2)} s, decode ${(r.completionTokens > 1 ? (r.completionTokens - 1) / dt : 0).toFixed(1)} tok/s, seed ${sampling.seed}]\n`);
    } else if (a.explain && chunk.step) {
      console.log(renderExplain(chunk.step, tokenTextOf(tokenizer), { color, index: i++, greedy: sampling.temperature === 0 }));
    } else if (!a.json) process.stdout.write(chunk.delta);
  }
  return 0;
}

export function parseStop(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  if (s.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch {
      throw new UserError(`--stop looks like a JSON array but is not valid JSON: ${s}`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new UserError('--stop: the JSON array must hold strings');
    return v;
  }
  return [s.replace(/\\n/g, '\n')];
}
