// Bottom sheets: panels that slide up over the page (the thumb reaches
// them), closed by their own buttons, the backdrop or the back key. While
// one is open, Tab stays inside it; closing it puts focus back where it was.

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
  const opener = document.activeElement;
  backdrop.hidden = false;
  lockScroll(true);
  let closed = false;
  const onKey = (e) => {
    if (e.key === 'Escape') hide();
    else if (e.key === 'Tab') keepFocusIn(backdrop, e);
  };
  const onBackdrop = (e) => { if (e.target === backdrop) hide(); };
  function hide() {
    if (closed) return;
    closed = true;
    backdrop.hidden = true;
    lockScroll(false);
    document.removeEventListener('keydown', onKey);
    backdrop.removeEventListener('click', onBackdrop);
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus({ preventScroll: true });
  }
  // Focus moves into the sheet unless its owner already put it there.
  queueMicrotask(() => {
    if (!closed && !backdrop.contains(document.activeElement)) {
      const first = focusable(backdrop)[0];
      if (first) first.focus({ preventScroll: true });
    }
  });
  document.addEventListener('keydown', onKey);
  backdrop.addEventListener('click', onBackdrop);
  return hide;
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** What Tab may reach inside `root`, in order. */
export function focusable(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((e) => !e.closest('[hidden]') && e.getClientRects().length > 0);
}

/** Wraps Tab and Shift+Tab around the sheet's first and last controls. */
function keepFocusIn(root, e) {
  const items = focusable(root);
  if (!items.length) { e.preventDefault(); return; }
  const first = items[0];
  const last = items[items.length - 1];
  const inside = root.contains(document.activeElement);
  if (e.shiftKey && (document.activeElement === first || !inside)) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
    e.preventDefault();
    first.focus();
  }
}

/**
 * A sheet built from `content` nodes, with a title and a close button.
 * Returns { close, node }.
 */
export function openSheet({ title, content, className = '', onClose }) {
  const close = el('button', { type: 'button', class: 'sheet-close', 'aria-label': t('common.close') }, icon('close'));
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
