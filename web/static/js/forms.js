// Showing API problems next to the right form fields, in the visitor's
// language where we know the code, in the server's words otherwise.

import { t, has } from './i18n.js';

/** A sentence for one problem (or one field error) in the current language. */
export function describe(problem) {
  const code = problem.code || 'generic';
  const key = `e.${code}`;
  if (has(key)) {
    const n = /(\d+)/.exec(problem.message || problem.detail || '');
    return t(key, { n: n ? n[1] : '' });
  }
  return problem.message || problem.detail || t('e.generic');
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
  showProblem(form, { code: 'validation_failed', errors: [{ field, code: 'local', message }] });
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
