// Bottom sheets: panels that slide up over the page (the thumb reaches
// them), closed by their own buttons, the backdrop or the back key.

import { t } from './i18n.js';
import { el, icon } from './dom.js';

let open = 0;

function lockScroll(on) {
  open = Math.max(0, open + (on ? 1 : -1));
  document.body.classList.toggle('sheet-open', open > 0);
}

/**
 * Shows an existing `.sheet-backdrop` element (from a page template).
 * Returns a function that hides it again.
 */
export function showSheet(backdrop, { onClose } = {}) {
  if (!backdrop.hidden) return () => hide();
  backdrop.hidden = false;
  lockScroll(true);
  let closed = false;
  const onKey = (e) => { if (e.key === 'Escape') hide(); };
  const onBackdrop = (e) => { if (e.target === backdrop) hide(); };
  function hide() {
    if (closed) return;
    closed = true;
    backdrop.hidden = true;
    lockScroll(false);
    document.removeEventListener('keydown', onKey);
    backdrop.removeEventListener('click', onBackdrop);
    if (onClose) onClose();
  }
  document.addEventListener('keydown', onKey);
  backdrop.addEventListener('click', onBackdrop);
  return hide;
}

/**
 * A sheet built from `content` nodes, with a title and a close button.
 * Returns { close, node }.
 */
export function openSheet({ title, content, className = '', onClose }) {
  const close = el('button', { type: 'button', class: 'sheet-close', 'aria-label': t('common.cancel') }, icon('close'));
  const sheet = el('div', { class: `sheet ${className}`, role: 'dialog', 'aria-modal': 'true' },
    el('div', { class: 'sheet-head' }, el('h2', { class: 'sheet-title', text: title || '' }), close),
    ...[].concat(content));
  const backdrop = el('div', { class: 'sheet-backdrop', hidden: true }, sheet);
  document.body.append(backdrop);
  const hide = showSheet(backdrop, {
    onClose: () => {
      backdrop.remove();
      if (onClose) onClose();
    },
  });
  close.addEventListener('click', hide);
  return { close: hide, node: sheet };
}

/** Asks a yes/no question; resolves true for yes. */
export function ask(text, okText, { danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = el('button', { type: 'button', class: danger ? 'btn btn-stop' : 'btn btn-primary', text: okText || t('common.ok') });
    const no = el('button', { type: 'button', class: 'btn btn-quiet', text: t('common.cancel') });
    const { close } = openSheet({
      title: '',
      className: 'sheet-ask',
      content: [el('p', { class: 'sheet-text', text }), el('div', { class: 'btn-row' }, no, yes)],
      onClose: () => resolve(answer),
    });
    yes.addEventListener('click', () => { answer = true; close(); });
    no.addEventListener('click', close);
    yes.focus();
  });
}
