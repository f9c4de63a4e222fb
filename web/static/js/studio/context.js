// What the studio's views share: who is signed in, which shop is open,
// navigation between views, and the confirm sheet.

import { $ } from '../dom.js';
import { t } from '../i18n.js';
import { showSheet } from '../sheet.js';

export const ctx = {
  /** GET /session, or null when signed out. */
  me: null,
  /** The shop being managed (an owned shop's id). */
  shopId: null,
  /** Runs before another view shows (e.g. releases the camera). */
  cleanup: null,
  /** Asked before navigating away; resolves true to allow it. */
  leaveGuard: null,
};

const SHOP_KEY = 'fieldcast.shop';

export function ownedShops() {
  return (ctx.me?.shops || []).filter((s) => s.role === 'owner');
}

export function chooseShop(id) {
  ctx.shopId = id;
  try { localStorage.setItem(SHOP_KEY, id); } catch (_) { /* not remembered */ }
}

export function rememberedShop() {
  try { return localStorage.getItem(SHOP_KEY); } catch (_) { return null; }
}

export function show(viewId) {
  if (ctx.cleanup) {
    const cleanup = ctx.cleanup;
    ctx.cleanup = null;
    cleanup();
  }
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== viewId; });
  $('view-loading').hidden = true;
  window.scrollTo(0, 0);
}

let router = async () => {};
export function setRouter(fn) { router = fn; }

/** Navigates inside the studio without reloading the page. */
export async function go(path, { replace = false } = {}) {
  if (ctx.leaveGuard && !(await ctx.leaveGuard())) return;
  ctx.leaveGuard = null;
  history[replace ? 'replaceState' : 'pushState']({}, '', path);
  await router();
}

export const route = () => router();

/** Asks a yes/no question in a sheet; resolves true for yes. */
export function confirmSheet(text, okText) {
  $('confirm-text').textContent = text;
  $('confirm-yes').textContent = okText || t('common.ok');
  return new Promise((resolve) => {
    let answer = false;
    const hide = showSheet($('confirm'), {
      onClose: () => {
        $('confirm-yes').removeEventListener('click', yes);
        $('confirm-no').removeEventListener('click', no);
        resolve(answer);
      },
    });
    const yes = () => { answer = true; hide(); };
    const no = () => hide();
    $('confirm-yes').addEventListener('click', yes);
    $('confirm-no').addEventListener('click', no);
    $('confirm-yes').focus();
  });
}
