import { readFileSync } from 'node:fs';
import { features } from './features.js';
import type { Message } from './message.js';
import { Classifier, type Model } from './model.js';
import { RULES } from './rules.js';

/** A message is spam from this probability on. */
export const THRESHOLD = 0.5;
/** How many of the weightiest words `details` names. */
export const DETAIL_WORDS = 5;

export interface Classification {
  is_spam: boolean;
  score: number;
  details: string[];
}

/** The model shipped with the package (made by `npm run train`, see the README). */
export function shippedModel(): Model {
  return JSON.parse(readFileSync(new URL('../model.json', import.meta.url), 'utf8')) as Model;
}

const RULE_TEXT = new Map(RULES.map((r) => [`rule:${r.name}`, `${r.name}: ${r.describe}`]));

function signed(w: number): string {
  return (w >= 0 ? '+' : '') + w.toFixed(2);
}

function describe(feature: string): string {
  const [kind, value] = feature.includes(':') ? [feature.slice(0, feature.indexOf(':')), feature.slice(feature.indexOf(':') + 1)] : ['', feature];
  switch (kind) {
    case 'subject':
      return `subject word "${value}"`;
    case 'from':
      return `sender's domain "${value}"`;
    case 'link':
      return `link to "${value}"`;
    default:
      return `word "${value}"`;
  }
}

/**
 * The verdict on a message, with its reasons: the rules that fired (each with the weight
 * the training gave it; + leans to spam) and the features that weighed most towards the
 * verdict.
 */
export function classify(classifier: Classifier, message: Message): Classification {
  const verdict = classifier.classify(features(message));
  const spam = verdict.probability >= THRESHOLD;
  const rules = verdict.weights.filter(([f]) => RULE_TEXT.has(f)).map(([f, w]) => `${RULE_TEXT.get(f)} (${signed(w)})`);
  const words = verdict.weights
    .filter(([f, w]) => !RULE_TEXT.has(f) && (spam ? w > 0 : w < 0))
    .sort(([, a], [, b]) => Math.abs(b) - Math.abs(a))
    .slice(0, DETAIL_WORDS)
    .map(([f, w]) => `${describe(f)} (${signed(w)})`);
  return { is_spam: spam, score: Math.round(verdict.probability * 10_000) / 10_000, details: [...rules, ...words] };
}
