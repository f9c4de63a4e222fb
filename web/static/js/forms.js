// Showing API problems next to the right form fields, in the visitor's
// language. The server sends codes (and the numbers a sentence needs, in
// `params`); its English `detail` is for developers and never shown.

import { t, has } from './i18n.js';

/** The code of a field error a page found itself, with its words as `message`. */
const LOCAL = 'local';

/**
 * The numbers for a problem's sentence: its `params` (`{max: 24}`), with
 * `n` the one most sentences use.
 */
export function problemVars(problem) {
  const params = problem.params && typeof problem.params === 'object' ? problem.params : {};
  const first = ['n', 'max', 'min', 'limit', 'available', 'retry_after_s', 'seconds']
    .map((k) => params[k])
    .find((v) => v !== undefined && v !== null);
  return { ...params, n: first ?? '' };
}

/**
 * A sentence for one problem (or one field error) in the current language:
 * the words for its code, else a general sentence; never the server's own
 * text. A page's own check (`fieldError`) brings its sentence already in words.
 */
export function describe(problem) {
  if (problem.code === LOCAL) return problem.message;
  const key = `e.${problem.code || 'generic'}`;
  return has(key) ? t(key, problemVars(problem)) : t('e.generic');
}

/**
 * Flags the named fields that are empty as "required" before anything is
 * sent (an empty mobile number is missing, not "not a mobile number").
 * True when all are filled.
 */
export function requireFilled(form, names) {
  const errors = names
    .filter((name) => !String(form.elements[name].value || '').trim())
    .map((field) => ({ field, code: 'required' }));
  if (errors.length) showProblem(form, { code: 'validation_failed', errors });
  return errors.length === 0;
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((e) => { e.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  const top = form.querySelector('.form-error');
  if (top) { top.textContent = ''; top.hidden = true; }
}

function inputFor(form, field) {
  return form.querySelector(`[data-api-field="${field}"]`) || form.elements.namedItem(field);
}

/** Puts the field errors by their fields and anything else at the top. */
export function showProblem(form, problem) {
  clearErrors(form);
  let first = null;
  const leftovers = [];
  for (const err of problem.errors || []) {
    const slot = form.querySelector(`[data-error-for="${err.field}"]`);
    if (!slot) { leftovers.push(describe(err)); continue; }
    slot.textContent = describe(err);
    const input = inputFor(form, err.field);
    if (input && input.setAttribute) {
      input.setAttribute('aria-invalid', 'true');
      first = first || input;
    }
  }
  if (!problem.errors?.length || leftovers.length) {
    const top = form.querySelector('.form-error');
    if (top) {
      top.textContent = leftovers.length ? leftovers.join('；') : describe(problem);
      top.hidden = false;
    }
  }
  if (first) first.focus();
}

/** A field error found before sending (e.g. a price that is not a number). */
export function fieldError(form, field, message) {
  showProblem(form, { code: 'validation_failed', errors: [{ field, code: LOCAL, message }] });
}

/** Disables the submit button while `work` runs, so a double tap sends once. */
export async function busy(form, work) {
  const button = form.querySelector('[type=submit]');
  if (button) button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute('aria-busy');
  }
}
