import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLASSES, type CharClass } from './definition.js';
import { generatePassword } from './generate.js';

/** Pearson's chi-square statistic of how often each character of `alphabet` came, against all equally likely. */
function chiSquare(counts: Map<string, number>, alphabet: string, total: number): number {
  const expected = total / alphabet.length;
  let sum = 0;
  for (const ch of alphabet) sum += ((counts.get(ch) ?? 0) - expected) ** 2 / expected;
  return sum;
}

test('every character of the alphabet equally likely: no modulo bias', () => {
  const all = Object.keys(CLASSES) as CharClass[];
  const alphabet = all.map((c) => CLASSES[c]).join('');
  const counts = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < 4000; i++) {
    for (const ch of generatePassword(64, all)) {
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
      total++;
    }
  }
  assert.equal(counts.size, alphabet.length);
  for (const ch of counts.keys()) assert.ok(alphabet.includes(ch), ch);
  // 68 degrees of freedom: P(chi2 > 150) is about 1e-8 for a uniform choice, while `byte % 69`
  // (the first 49 characters 4/256 likely, the rest 3/256) gives about 3,800 on these 256,000 draws
  const stat = chiSquare(counts, alphabet, total);
  assert.ok(stat < 150, `chi-square ${stat.toFixed(1)} over ${alphabet.length} characters`);
  const biased = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const ch = alphabet[(i % 256) % alphabet.length] as string;
    biased.set(ch, (biased.get(ch) ?? 0) + 1);
  }
  assert.ok(chiSquare(biased, alphabet, total) > 1000, 'the statistic tells a modulo-biased choice');
});

test('at least one of each class asked for, and nothing else', () => {
  for (const classes of [['numbers'], ['special', 'uppercase'], ['lowercase', 'numbers', 'special', 'uppercase']] as CharClass[][]) {
    const alphabet = classes.map((c) => CLASSES[c]).join('');
    for (let i = 0; i < 2000; i++) {
      const pw = generatePassword(classes.length, classes);
      assert.equal(pw.length, classes.length);
      for (const ch of pw) assert.ok(alphabet.includes(ch), `${ch} of ${pw} not in ${classes.join(',')}`);
      for (const c of classes) assert.ok([...pw].some((ch) => CLASSES[c].includes(ch)), `${pw} lacks ${c}`);
    }
  }
  assert.throws(() => generatePassword(8, []), /at least one character class/);
  assert.throws(() => generatePassword(1, ['numbers', 'special']), /at least 2/);
  assert.throws(() => generatePassword(2.5, ['numbers']), /whole number/);
});
