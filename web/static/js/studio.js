// The farmer's studio (/studio…): one page, several views, chosen by the
// path so the phone's back button works.
//
//   /studio                    my shop, broadcasts, products (or sign in)
//   /studio/shop               edit the shop
//   /studio/products/new       add a product (or /studio/products/{id})
//   /studio/broadcasts/new     schedule a broadcast
//   /studio/broadcasts/{id}    go live / app keys, selling, chat
//   /studio/orders             orders: ship, mark paid, cancel, export
//   /studio/moderators         appoint and remove moderators, the log
//   /studio/shop/new           open a (further) shop
//
// An account that only moderates other farmers' shops sees those shops'
// broadcasts instead of the shop form.

import { initLangSwitch, t } from './i18n.js';
import { $ } from './dom.js';
import { get } from './api.js';
import { describe } from './forms.js';
import { ctx, setRouter, go, ownedShops, chooseShop, rememberedShop, show } from './studio/context.js';
import * as auth from './studio/auth.js';
import * as shop from './studio/shop.js';
import * as dashboard from './studio/dashboard.js';
import * as products from './studio/products.js';
import * as schedule from './studio/schedule.js';
import * as golive from './studio/golive.js';
import * as orders from './studio/orders.js';
import * as moderators from './studio/moderators.js';

initLangSwitch();
[auth, shop, dashboard, products, schedule, golive, orders, moderators].forEach((m) => m.init());

async function whoAmI() {
  try {
    ctx.me = await get('/session');
  } catch (problem) {
    if (problem.status === 401) ctx.me = null;
    else throw problem;
  }
}

const routes = [
  [/^\/studio\/?$/, () => dashboard.view()],
  [/^\/studio\/shop$/, () => shop.view(ctx.shopId)],
  [/^\/studio\/products\/new$/, () => products.view(null)],
  [/^\/studio\/products\/([^/]+)$/, (m) => products.view(decodeURIComponent(m[1]))],
  [/^\/studio\/broadcasts\/new$/, () => schedule.view()],
  [/^\/studio\/broadcasts\/([^/]+)$/, (m) => golive.view(decodeURIComponent(m[1]))],
  [/^\/studio\/orders$/, () => orders.view()],
  [/^\/studio\/moderators$/, () => moderators.view()],
  [/^\/studio\/shop\/new$/, () => shop.view(null, { another: true })],
];

let here = location.pathname;

async function router() {
  here = location.pathname;
  try {
    if (ctx.me === null) await whoAmI();
    if (!ctx.me || ctx.me.kind !== 'account') {
      auth.view();
      return;
    }
    const owned = ownedShops();
    if (!owned.length) {
      // Moderators of other shops start at those shops; anyone else opens one.
      if (moderators.moderatedShops().length && location.pathname !== '/studio/shop/new') {
        await moderators.home();
      } else {
        await shop.view(null, { another: location.pathname === '/studio/shop/new' });
      }
      return;
    }
    if (!owned.some((s) => s.id === ctx.shopId)) {
      const saved = rememberedShop();
      chooseShop(owned.some((s) => s.id === saved) ? saved : owned[0].id);
    }
    const path = location.pathname;
    for (const [pattern, handler] of routes) {
      const m = pattern.exec(path);
      if (m) { await handler(m); return; }
    }
    await go('/studio', { replace: true });
  } catch (problem) {
    if (problem && problem.status === 401) {
      ctx.me = null;
      auth.view();
      return;
    }
    show('view-loading');
    const loading = $('view-loading');
    loading.hidden = false;
    loading.textContent = problem && problem.code ? describe(problem) : t('e.generic');
  }
}

setRouter(router);

// In-studio links navigate without reloading.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-link]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || a.target) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});

window.addEventListener('popstate', async () => {
  const target = location.pathname;
  if (ctx.leaveGuard) {
    // Stay put until the farmer confirms leaving a live broadcast.
    history.pushState({}, '', here);
    await go(target);
  } else {
    await router();
  }
});

router();
