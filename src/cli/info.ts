// chatwright info: what a model folder or GGUF file holds (architecture, parameters, stored dtype, context, tokenizer,
// chat template, stop tokens), read from its config and headers without loading the weights of a folder.
//
//   chatwright info runs/demo/sft
//   chatwright info model.gguf --json
import { UserError } from '../util/errors.js';
import { describeModel, formatModelInfo } from '../model/info.js';
import { helpText, parseArgs, wantsHelp } from './args.js';

const spec = {
  json: { type: 'boolean', description: 'print the description as JSON', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  const summary = 'describe a model folder or GGUF file: architecture, parameters, dtype, context, tokenizer, chat template';
  if (wantsHelp(argv)) {
    console.log(helpText('info', summary, spec, 'chatwright info DIR|FILE.gguf [options]'));
    return 0;
  }
  const a = parseArgs('info', argv, spec);
  if (a._.length !== 1) {
    throw new UserError(a._.length === 0 ? 'info: which model? give a folder or a .gguf file' : `info: one model at a time, got ${a._.length}`,
      'run `chatwright info runs/demo/sft` or `chatwright info model.gguf`');
  }
  const info = describeModel(a._[0]);
  console.log(a.json ? JSON.stringify(info) : formatModelInfo(info));
  return 0;
}
