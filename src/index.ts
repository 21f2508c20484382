// The library: `import { ... } from 'chatwright'`. Every CLI command is one of these functions; the nouns (Tokenizer,
// GPT, the engine) are the same objects the stages use. A sketch of the whole path:
//
//   import { trainTokenizer, prepareData, pretrain, sft, loadModel, generate, exportGguf } from 'chatwright';
//   const tok = trainTokenizer(texts, { vocabSize: 4096 });            tok.save('runs/x/tokenizer');
//   prepareData({ corpus: ['my.txt'], tokenizer: 'runs/x/tokenizer', out: 'runs/x/data', valFraction: 0.01 });
//   await pretrain({ preset: 'tiny', data: 'runs/x/data', out: 'runs/x/base', steps: 2000 });
//   await sft({ init: 'runs/x/base', data: 'demos.jsonl', out: 'runs/x/sft' });
//   const { model, tokenizer } = loadModel('runs/x/sft');             // or a Hugging Face folder, or FILE.gguf
//   const ids = tokenizer!.renderForCompletion([{ role: 'user', content: 'Hello' }]);
//   console.log(generate(model, tokenizer!, ids, { maxNewTokens: 64, temperature: 0.7 }).text);
//   exportGguf(model, tokenizer!, 'runs/x/sft.gguf', 'q8_0');
//
// Stages print progress to stderr and take their options as one object (the CLI's --flags in camelCase).

// ---- tokenizer: byte-level and SentencePiece-style BPE, special tokens, chat templates, Hugging Face files
export {
  Tokenizer, trainTokenizer, SPECIAL_TOKENS, CHAT_TEMPLATE_JINJA, CL100K_PATTERN, GPT2_PATTERN, QWEN2_PATTERN,
  DEFAULT_PATTERN, validateConversation, type Message, type Role, type SpecialToken, type StreamDecoder,
} from './tokenizer/index.js';

// ---- model: the GPT, its config, Hugging Face folders, GGUF files
export { GPT, KVCache, type ParamInfo } from './model/gpt.js';
export { PRESETS, configFromPreset, validateConfig, describeConfig, type GPTConfig, type PresetName, type RopeScaling } from './model/config.js';
export { loadModel, saveModel, toHfConfig, fromHfConfig, type LoadInfo } from './model/checkpoint.js';
export { exportGguf, loadGgufModel, ollamaModelfile, type GgufType, type ExportResult } from './model/gguf-model.js';
export { readGguf, writeGguf, tensorToF32, type GgufFile, type GgufTensor, type GgufValue } from './model/gguf.js';
export { readSafetensors, writeSafetensors } from './model/safetensors.js';
export { describeModel, formatModelInfo, type ModelInfo } from './model/info.js';

// ---- generation: the sampler chain, the KV-cache engine, text and streaming
export {
  generate, generateBatch, generateStream, Engine, Session, resolveSampling,
  type GenerateOptions, type GenerateResult, type StreamChunk, type SamplingOptions, type FinishReason,
} from './generate/index.js';

// ---- stages: each CLI command as a function
export { prepareData, type PrepareOptions } from './stages/data.js';
export { pretrain, type PretrainOptions, type PretrainResult } from './stages/pretrain.js';
export { sft, type SFTOptions, type SFTResult } from './stages/sft.js';
export { trainReward, rewardJudge, type RewardOptions, type RewardResult } from './stages/reward.js';
export { trainDPO, type DPOOptions, type DPOResult } from './stages/dpo.js';
export { trainPPO, type PPOOptions, type PPOResult } from './stages/ppo.js';
export { trainGRPO, type GRPOOptions, type GRPOResult } from './stages/grpo.js';
export { RewardModel } from './train/reward-model.js';
export { runEval, evaluateModel, type EvalReport } from './stages/eval.js';
export { demo, type DemoOptions, type DemoResult } from './stages/demo.js';

// ---- human feedback: samples, the preference store, the formats people bring, the simulated labeller
export {
  sampleItems, PreferenceStore, loadPreferences, readPreferenceFile, labelSamples, labellerScore, simulatedLabeller,
  type SampleItem, type PromptPreferences, type Judge,
} from './feedback/index.js';

// ---- data and backends
export { readPoems, readWordnet, corpusDocuments } from './train/corpora.js';
export { getBackend, setBackend, nativeAvailable, setMatmulPrecision, getMatmulPrecision, type MatmulPrecision } from './tensor/index.js';
export { UserError } from './util/errors.js';
