import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { classify } from './classify.js';
import { parseEmail } from './message.js';
import type { Classifier } from './model.js';

/** A labelled message of data/spamassassin-sample.jsonl.gz (see scripts/sample-corpus.mjs). */
export interface Labelled {
  id: string;
  label: 'spam' | 'ham';
  message: string;
}

/** The labelled set kept in the repository (not shipped to `micro run`: .microignore). */
export function readCorpus(url = new URL('../data/spamassassin-sample.jsonl.gz', import.meta.url)): Labelled[] {
  return gunzipSync(readFileSync(url))
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Labelled);
}

/** The held-out fifth, by a hash of the id: never trained on, only measured. */
export function heldOut(id: string): boolean {
  return (createHash('sha256').update(id).digest()[0] as number) % 5 === 0;
}

export interface Metrics {
  messages: number;
  accuracy: number;
  precision: number;
  recall: number;
}

/** Accuracy, precision and recall (of spam) of the classifier on `set`, each to 4 decimals. */
export async function measure(classifier: Classifier, set: Labelled[]): Promise<Metrics> {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let right = 0;
  for (const item of set) {
    const spam = classify(classifier, await parseEmail(item.message)).is_spam;
    const truth = item.label === 'spam';
    if (spam === truth) right++;
    if (spam && truth) tp++;
    if (spam && !truth) fp++;
    if (!spam && truth) fn++;
  }
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  return { messages: set.length, accuracy: round(right / set.length), precision: round(tp / (tp + fp)), recall: round(tp / (tp + fn)) };
}
