import { randomInt } from 'node:crypto';
import { CLASSES, type CharClass } from './definition.js';

/**
 * A password of `length` characters drawn from the union of `classes`, with at least one of
 * each: uniform over every such password. Each character is an independent uniform choice
 * (`randomInt` rejects the random values that would bias a modulo), and a draw missing a
 * class is drawn again whole rather than patched, which would make some passwords likelier
 * than others. The worst case, 4 classes in 4 characters, keeps about 1 draw in 20; longer
 * passwords almost every draw.
 */
export function generatePassword(length: number, classes: readonly CharClass[]): string {
  if (classes.length === 0) throw new RangeError('at least one character class');
  if (!Number.isSafeInteger(length) || length < classes.length) throw new RangeError(`length must be a whole number of at least ${classes.length}`);
  const alphabet = classes.map((c) => CLASSES[c]).join('');
  for (;;) {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
    if (classes.every((c) => hasAny(out, CLASSES[c]))) return out;
  }
}

function hasAny(text: string, chars: string): boolean {
  for (const ch of text) if (chars.includes(ch)) return true;
  return false;
}
