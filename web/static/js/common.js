// Entry for pages with no behaviour of their own (404, error): language only.
import { initLangSwitch } from './i18n.js';

initLangSwitch();
