// Open a shop, or edit its name, village/county, story and how to pay it.

import { $ } from '../dom.js';
import { get, post, patch } from '../api.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors, busy } from '../forms.js';
import { toast } from '../dom.js';
import { ctx, show, go, chooseShop } from './context.js';
import { photoPicker, uploadPhoto } from '../photo.js';

let editing = null; // shop id, or null when creating
let picker = null;  // the shop's photo

export function init() {
  const form = $('form-shop');
  picker = photoPicker({ labelKey: 'f.shop_photo' });
  form.insertBefore(picker.node, form.querySelector('.form-error'));
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
      const creating = !editing;
      try {
        let id = editing;
        if (editing) {
          await patch(`/shops/${editing}`, body);
        } else {
          id = (await post('/shops', body)).id;
          chooseShop(id);
          editing = id;
        }
        if (picker.picked) {
          try {
            await uploadPhoto(`/shops/${encodeURIComponent(id)}/photo`, picker.picked);
          } catch (problem) {
            // The shop is saved; only the photo needs another try.
            showProblem(form, { code: 'validation_failed', errors: [{ field: 'photo', code: problem.code, params: problem.params }] });
            return;
          }
        }
        toast(t('common.saved'));
        ctx.me = await get('/session');
        await go('/studio', { replace: creating });
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
    picker.set(shop.photo);
  } else {
    picker.set(null);
  }
  show('view-shop');
}
