// Prints every word of both languages as JSON (`node web/tests/words.mjs`):
// the Rust test tests/it/i18n.rs checks server codes against it.
import { dictionary } from '../static/js/i18n.js';
import '../static/js/live/words.js';
import '../static/js/studio/words.js';
import '../static/js/orderwords.js';
import '../static/js/replay/words.js';

export function allWords() {
  return { zh: dictionary('zh'), en: dictionary('en') };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(allWords()));
}
