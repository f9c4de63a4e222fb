// Open a shop, or edit its name, village/county, story and how to pay it.

import { $ } from '../dom.js';
import { get, post, patch } from '../api.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors, busy } from '../forms.js';
import { toast } from '../dom.js';
import { ctx, show, go, chooseShop } from './context.js';

let editing = null; // shop id, or null when creating

export function init() {
  const form = $('form-shop');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, async () => {
      clearErrors(form);
      const body = {
        name: form.elements.name.value.trim(),
        place: form.elements.place.value.trim(),
        story: form.elements.story.value.trim(),
        payment_note: form.elements.payment_note.value.trim(),
      };
      try {
        if (editing) {
          await patch(`/shops/${editing}`, body);
          toast(t('common.saved'));
        } else {
          const shop = await post('/shops', body);
          chooseShop(shop.id);
        }
        ctx.me = await get('/session');
        await go('/studio', { replace: !editing });
      } catch (problem) {
        showProblem(form, problem);
      }
    });
  });
}

/**
 * `shopId` null: a new shop. The very first one has no way back (a farmer
 * needs a shop); `another` (a further shop, or a moderator opening their
 * own) does.
 */
export async function view(shopId, { another = false } = {}) {
  editing = shopId;
  const form = $('form-shop');
  clearErrors(form);
  form.reset();
  $('shop-back').hidden = !shopId && !another;
  $('shop-form-title').dataset.i18n = shopId ? 'shop.edit_title' : 'shop.new_title';
  $('shop-form-hint').dataset.i18n = shopId ? 'shop.edit_hint' : 'shop.new_hint';
  $('shop-form-title').textContent = t($('shop-form-title').dataset.i18n);
  $('shop-form-hint').textContent = t($('shop-form-hint').dataset.i18n);
  if (shopId) {
    const shop = await get(`/shops/${shopId}`);
    form.elements.name.value = shop.name;
    form.elements.place.value = shop.place;
    form.elements.story.value = shop.story;
    form.elements.payment_note.value = shop.payment_note || '';
  }
  show('view-shop');
}
