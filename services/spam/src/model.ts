/**
 * A naive Bayes classifier on the set of a message's features (multinomial over distinct
 * features, Laplace smoothing): for each feature, the share of the spam and of the ham of
 * the training set that had it. A message's log-odds of spam is the prior's plus each known
 * feature's weight, log P(f | spam) / P(f | ham); features the training set did not have
 * often enough count nothing.
 */

/** The model as shipped (model.json): counts, so that weights and explanations come from one source. */
export interface Model {
  version: 1;
  /** training messages of each class */
  messages: { spam: number; ham: number };
  /** a feature → [spam messages with it, ham messages with it] */
  features: Record<string, [number, number]>;
}

/** A feature kept in the model must be in at least this many training messages. */
export const MIN_MESSAGES = 3;

export interface Verdict {
  /** the probability of spam, 0..1 */
  probability: number;
  /** the known features and their weights, in the order given */
  weights: Array<[feature: string, weight: number]>;
}

/** Counts features of labelled messages into a model (deterministic: keys sorted). */
export function train(examples: Iterable<{ features: string[]; spam: boolean }>, minMessages = MIN_MESSAGES): Model {
  const counts = new Map<string, [number, number]>();
  const messages = { spam: 0, ham: 0 };
  for (const { features, spam } of examples) {
    messages[spam ? 'spam' : 'ham']++;
    for (const f of new Set(features)) {
      const c = counts.get(f) ?? [0, 0];
      c[spam ? 0 : 1]++;
      counts.set(f, c);
    }
  }
  const kept = [...counts].filter(([, [s, h]]) => s + h >= minMessages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { version: 1, messages, features: Object.fromEntries(kept) };
}

export class Classifier {
  private readonly weight = new Map<string, number>();
  private readonly prior: number;

  constructor(readonly model: Model) {
    if (model.version !== 1 || !(model.messages.spam > 0 && model.messages.ham > 0)) throw new Error('spam model: not a version 1 model with messages of both classes');
    const entries = Object.entries(model.features);
    const vocabulary = entries.length;
    let spamTotal = 0;
    let hamTotal = 0;
    for (const [, [s, h]] of entries) {
      spamTotal += s;
      hamTotal += h;
    }
    for (const [f, [s, h]] of entries) this.weight.set(f, Math.log((s + 1) / (spamTotal + vocabulary)) - Math.log((h + 1) / (hamTotal + vocabulary)));
    this.prior = Math.log(model.messages.spam / model.messages.ham);
  }

  /** [spam, ham] training messages with feature `f`, or undefined */
  counts(f: string): [number, number] | undefined {
    return Object.hasOwn(this.model.features, f) ? this.model.features[f] : undefined;
  }

  classify(features: Iterable<string>): Verdict {
    let logOdds = this.prior;
    const weights: Verdict['weights'] = [];
    for (const f of new Set(features)) {
      const w = this.weight.get(f);
      if (w === undefined) continue;
      logOdds += w;
      weights.push([f, w]);
    }
    return { probability: sigmoid(logOdds), weights };
  }
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}
