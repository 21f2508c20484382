// The nouns of learning from preferences: answers as token rows after their prompt, right-padded batches of them, the
// score of a reward model at an answer's last token, the summed log-probability of an answer under a policy, and the
// two preference losses: Bradley-Terry for the reward model and DPO / IPO for the policy.
//
// - A row is the chat template's prompt (ending with <|assistant|>) followed by the answer's tokens and <|eot|>. The
//   reward is read at that <|eot|>: the model has seen the whole answer and that it ended (InstructGPT, Ouyang et al.
//   2022, section 3.5: "the reward model takes in a prompt and response, and outputs a scalar reward").
// - Rows are right-padded: attention is causal, so pad tokens after a row's end change nothing before it.
// - The preferences of a prompt (src/feedback: PromptPreferences) are its K answers and the ordered pairs among them.
//   InstructGPT trains on all K-choose-2 pairs of a prompt in one batch, as one element: each answer is forwarded once,
//   and the prompt's loss is the mean over its pairs (spreading them over batches overfits: section 3.5 of the paper).
//
// Boundary: token ids and Tensors; no files (src/feedback reads and writes preferences) and no training loop.
import { UserError } from '../util/errors.js';
import {
  Tensor, noGrad, releaseTape, gatherRows, sub, addScalar, mulScalar, logSigmoid, mul, sum, tokenLogprobs, sumLastDim,
} from '../tensor/index.js';
import type { GPT } from '../model/gpt.js';
import type { Message, Tokenizer } from '../tokenizer/index.js';

// ---------------------------------------------------------------------------------------------------------------------
// Rows and batches

export interface AnswerRow { ids: number[]; start: number } // start: index in ids of the answer's first token

export function answerRow(tok: Tokenizer, prompt: Message[], answer: string): AnswerRow {
  const ids = tok.renderForCompletion(prompt);
  const start = ids.length;
  for (const id of tok.encodeOrdinary(answer)) ids.push(id);
  ids.push(tok.eot);
  return { ids, start };
}

export interface AnswerBatch {
  B: number;
  T: number;
  ids: Int32Array; // (B, T), right-padded
  targets: Int32Array; // (B, T): at position t the next token when it belongs to the answer (its <|eot|> included), else -1
  last: Int32Array; // (B): flat index b*T + t of each row's last token (the answer's <|eot|>)
  answerTokens: Int32Array; // (B): tokens of each answer, <|eot|> included
}

export function padBatch(rows: AnswerRow[], pad: number): AnswerBatch {
  const B = rows.length, T = Math.max(...rows.map((r) => r.ids.length));
  const ids = new Int32Array(B * T).fill(Math.max(0, pad));
  const targets = new Int32Array(B * T).fill(-1);
  const last = new Int32Array(B), answerTokens = new Int32Array(B);
  rows.forEach((r, b) => {
    ids.set(r.ids, b * T);
    for (let t = r.start - 1; t + 1 < r.ids.length; t++) targets[b * T + t] = r.ids[t + 1];
    last[b] = b * T + r.ids.length - 1;
    answerTokens[b] = r.ids.length - r.start;
  });
  return { B, T, ids, targets, last, answerTokens };
}

// Rows longer than the model's context cannot be scored whole; callers drop the pairs that use them and say how many.
export function fits(row: AnswerRow, maxT: number): boolean {
  return row.ids.length <= maxT;
}

// ---------------------------------------------------------------------------------------------------------------------
// What the models compute on a batch

// (B): the scalar head's output at each row's last token.
export function lastTokenScores(model: GPT, batch: AnswerBatch): Tensor {
  if (!model.config.scalarHead) throw new Error('lastTokenScores: the model has no scalar head');
  const { scores } = model.forward(batch.ids, batch.B, batch.T);
  return gatherRows(scores!.view([batch.B * batch.T, 1]), batch.last).view([batch.B]); // (B)
}

// (B): sum over each answer's tokens of log p(token | everything before it).
export function answerLogprobs(model: GPT, batch: AnswerBatch): Tensor {
  const { logits } = model.forward(batch.ids, batch.B, batch.T); // (B*T, V)
  return sumLastDim(tokenLogprobs(logits, batch.targets).view([batch.B, batch.T])); // (B)
}

// Inference helpers: the same numbers as plain arrays, in chunks of `chunk` rows.
export function scoreRows(model: GPT, rows: AnswerRow[], pad: number, chunk = 16): Float64Array {
  return mapChunks(rows, chunk, (b) => lastTokenScores(model, padBatch(b, pad)).data);
}
export function logprobRows(model: GPT, rows: AnswerRow[], pad: number, chunk = 8): Float64Array {
  return mapChunks(rows, chunk, (b) => answerLogprobs(model, padBatch(b, pad)).data);
}
function mapChunks(rows: AnswerRow[], chunk: number, f: (rows: AnswerRow[]) => ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i += chunk) {
    noGrad(() => out.set(Array.from(f(rows.slice(i, i + chunk))), i));
    releaseTape();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Losses

// Bradley-Terry (InstructGPT eq. 1): loss = -sum_p w_p log sigmoid(r[chosen_p] - r[rejected_p] - margin), with w_p = 1 /
// (pairs of p's prompt * prompts in the batch), so each prompt counts once whatever its K. The margin (Llama 2, Touvron
// et al. 2023, eq. 2) asks for a larger gap on pairs a person marked as clearly better; 0 is plain Bradley-Terry.
export function bradleyTerryLoss(r: Tensor, chosen: Int32Array, rejected: Int32Array, weights: Float32Array, margin = 0): Tensor {
  const P = chosen.length;
  if (rejected.length !== P || weights.length !== P) throw new Error(`bradleyTerryLoss: ${P} chosen, ${rejected.length} rejected, ${weights.length} weights`);
  const r2 = r.view([r.size, 1]);
  const diff = sub(gatherRows(r2, chosen), gatherRows(r2, rejected)).view([P]); // (P)
  const ls = logSigmoid(margin !== 0 ? addScalar(diff, -margin) : diff);
  return mulScalar(sum(mul(ls, Tensor.from(weights, [P]))), -1);
}

export type DPOLoss = 'sigmoid' | 'ipo';

// DPO (Rafailov et al. 2023, eq. 7) on h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)):
//   sigmoid: -log sigmoid(beta h)            the paper's loss
//   ipo:     (h - 1 / (2 beta))^2            IPO (Azar et al. 2023, eq. 17): a squared loss that keeps h at a finite
//                                            target, where DPO's loss keeps rewarding a larger h even on pairs that are
//                                            already separated (overfitting to deterministic preferences).
// policy: (2P) summed answer log-probs, chosen rows first then rejected (rows i and P + i form pair i); ref: the same
// under the frozen reference. Returns the mean loss over the P pairs and, per pair, the implicit reward margin
// beta * h (DPO section 5: r(x, y) = beta log pi(y|x) / ref(y|x)).
export function dpoLoss(policy: Tensor, ref: Float64Array | Float32Array, beta: number, kind: DPOLoss = 'sigmoid'): { loss: Tensor; margins: Float64Array } {
  const P = policy.size / 2;
  if (!Number.isInteger(P) || ref.length !== 2 * P) throw new Error(`dpoLoss: policy has ${policy.size} rows and ref ${ref.length}; expected 2P of each`);
  const p2 = policy.view([2 * P, 1]);
  const idx = (from: number) => Int32Array.from({ length: P }, (_, i) => from + i);
  const refDiff = Float32Array.from({ length: P }, (_, i) => ref[i] - ref[P + i]);
  const h = sub(sub(gatherRows(p2, idx(0)), gatherRows(p2, idx(P))).view([P]), Tensor.from(refDiff, [P])); // (P)
  const margins = Float64Array.from(h.data, (x) => beta * x);
  let loss: Tensor;
  if (kind === 'sigmoid') {
    loss = mulScalar(sum(logSigmoid(mulScalar(h, beta))), -1 / P);
  } else if (kind === 'ipo') {
    const d = addScalar(h, -1 / (2 * beta));
    loss = mulScalar(sum(mul(d, d)), 1 / P);
  } else {
    throw new UserError(`unknown DPO loss "${String(kind)}"`, 'use sigmoid (DPO) or ipo');
  }
  return { loss, margins };
}
