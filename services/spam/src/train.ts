// Trains the model on the labelled set's training part and writes model.json; prints the
// held-out metrics for the README. `npm run train --workspace services/spam` (after a build).
import { writeFileSync } from 'node:fs';
import { heldOut, measure, readCorpus } from './corpus.js';
import { features } from './features.js';
import { parseEmail } from './message.js';
import { Classifier, train } from './model.js';

const corpus = readCorpus();
const training = corpus.filter((m) => !heldOut(m.id));
const examples = [];
for (const m of training) examples.push({ features: features(await parseEmail(m.message)), spam: m.label === 'spam' });
const model = train(examples);
writeFileSync(new URL('../model.json', import.meta.url), JSON.stringify(model) + '\n');
const test = corpus.filter((m) => heldOut(m.id));
const metrics = await measure(new Classifier(model), test);
console.log(`trained on ${training.length} messages (${model.messages.spam} spam, ${model.messages.ham} ham), ${Object.keys(model.features).length} features`);
console.log(`held out ${metrics.messages}: accuracy ${metrics.accuracy}, precision ${metrics.precision}, recall ${metrics.recall}`);
