// The special tokens, named in this one place. They follow the learned merges in the vocabulary, in this order, and
// are never produced from text unless the caller allows them (a user typing "<|bos|>" gets the plain-text tokens).
//
//   <|bos|>        beginning of a text; every rendered conversation starts with it
//   <|eos|>        end of a text (document separator in pretraining shards)
//   <|system|>     starts a system message
//   <|user|>       starts a user message
//   <|assistant|>  starts an assistant message; renderForCompletion ends with it, for generation
//   <|eot|>        end of a turn (of any role); the assistant's <|eot|> is trained on and is where generation stops
//   <|pad|>        padding in batches; never trained on
export const SPECIAL_TOKENS = ['<|bos|>', '<|eos|>', '<|system|>', '<|user|>', '<|assistant|>', '<|eot|>', '<|pad|>'] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

// Names other byte-level tokenizers use for the same roles, so a foreign tokenizer (GPT-2, Llama 3, Qwen, SmolLM) maps
// onto ours where it can. The first name present wins; a role without any is -1.
export const SPECIAL_ALIASES: Record<SpecialToken, string[]> = {
  '<|bos|>': ['<|bos|>', '<|begin_of_text|>', '<|startoftext|>', '<|endoftext|>', '<s>'],
  '<|eos|>': ['<|eos|>', '<|end_of_text|>', '<|endoftext|>', '</s>'],
  '<|system|>': ['<|system|>'],
  '<|user|>': ['<|user|>'],
  '<|assistant|>': ['<|assistant|>'],
  '<|eot|>': ['<|eot|>', '<|eot_id|>', '<|im_end|>', '<|end|>'],
  '<|pad|>': ['<|pad|>', '<|finetune_right_pad_id|>', '<pad>', '<|endoftext|>'],
};
