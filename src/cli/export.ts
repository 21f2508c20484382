// chatwright export gguf: a model folder (or GGUF file) -> one GGUF v3 file for llama.cpp, Ollama and node-llama-cpp,
// with the tokenizer and chat template inside, and an Ollama Modelfile written beside it.
//
//   chatwright export gguf --model runs/demo/sft --out runs/demo/sft.gguf --type q8_0
//   ollama create poems -f runs/demo/sft.Modelfile && ollama run poems
import { dirname, join, basename } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { loadModel } from '../model/checkpoint.js';
import { exportGguf, type GgufType } from '../model/gguf-model.js';
import { helpText, oneOf, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  model: { type: 'string', description: 'model folder (config.json, model.safetensors, tokenizer.json) or a .gguf file' },
  out: { type: 'string', description: 'the GGUF file to write, e.g. runs/demo/sft.gguf' },
  type: { type: 'string', description: 'tensor type of the weight matrices: f32, f16 or q8_0 (norms and biases stay f32)', default: 'f16' },
  name: { type: 'string', description: 'general.name in the file (default: the file name)' },
  json: { type: 'boolean', description: 'print what was written as JSON', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  const summary = 'export a model to GGUF for llama.cpp, Ollama and node-llama-cpp';
  if (wantsHelp(argv)) {
    console.log(helpText('export gguf', summary, spec));
    return 0;
  }
  const [format, ...rest] = argv;
  if (format !== 'gguf') {
    throw new UsageError('export', format === undefined ? 'which format? (gguf)' : `unknown subcommand "${format}" (the formats: gguf)`,
      'chatwright export gguf --model DIR --out FILE.gguf [options]');
  }
  const a = parseArgs('export gguf', rest, spec);
  if (a._.length) throw new UsageError('export gguf', `unexpected argument "${a._[0]}"`);
  if (!a.model) throw new UsageError('export gguf', '--model DIR is required');
  if (!a.out) throw new UsageError('export gguf', '--out FILE.gguf is required');
  if (!a.out.endsWith('.gguf')) throw new UsageError('export gguf', `--out must end in .gguf, got "${a.out}"`);
  const type = oneOf('export gguf', 'type', a.type, ['f32', 'f16', 'q8_0'] as const) as GgufType;
  const { model, tokenizer } = loadModel(a.model);
  if (!tokenizer) throw new UserError(`no tokenizer in ${a.model}`, 'a GGUF file carries its tokenizer: copy tokenizer.json and tokenizer_config.json into the model folder');
  process.stderr.write(`exporting ${model.summary()} as ${type}\n`);
  const r = exportGguf(model, tokenizer, a.out, type, a.name);
  const modelfilePath = join(dirname(a.out), basename(a.out, '.gguf') + '.Modelfile');
  writeFileAtomic(modelfilePath, r.modelfile);
  if (a.json) {
    console.log(JSON.stringify({ path: r.path, bytes: r.bytes, tensors: r.tensors, types: r.types, modelfile: modelfilePath }));
  } else {
    const types = Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ');
    console.log(`wrote ${r.path}: ${r.tensors} tensors (${types}), ${(r.bytes / 2 ** 20).toFixed(1)} MiB of weights`);
    console.log(`wrote ${modelfilePath} (Ollama: ollama create NAME -f ${modelfilePath}):\n`);
    console.log(r.modelfile);
  }
  return 0;
}
