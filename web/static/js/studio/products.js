// Add or edit a product. Prices are typed in yuan and sent in fen, as
// integers: "168.5" becomes 16850 without ever being a float.

import { $, toast } from '../dom.js';
import { get, post, patch, del } from '../api.js';
import { t } from '../i18n.js';
import { showProblem, clearErrors, busy, fieldError } from '../forms.js';
import { ctx, show, go, confirmSheet } from './context.js';
import { photoPicker, uploadPhoto } from '../photo.js';

let editing = null; // the product being edited, or null
let picker = null;  // the photo field

/** "168", "168.5", "１６８.50", "168元" → fen; null when not a price. */
export function parseYuan(raw) {
  const text = String(raw)
    .replace(/[０-９]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xfee0))
    .replace(/[．。]/g, '.')
    .replace(/[¥￥元\s,，]/g, '');
  const m = /^(\d{1,7})(?:\.(\d{0,2}))?$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
}

export function fenToYuanText(fen) {
  const cents = fen % 100;
  return cents ? `${Math.trunc(fen / 100)}.${String(cents).padStart(2, '0')}` : String(fen / 100);
}

export function init() {
  const form = $('form-product');
  picker = photoPicker({ labelKey: 'f.product_photo' });
  form.insertBefore(picker.node, form.querySelector('.form-error'));
  form.querySelectorAll('[data-step]').forEach((b) => b.addEventListener('click', () => {
    const input = form.elements.stock;
    const next = Math.max(0, (parseInt(input.value, 10) || 0) + Number(b.dataset.step));
    input.value = String(next);
  }));
  $('presale').addEventListener('change', () => {
    $('ships-on-field').hidden = !$('presale').checked;
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, () => save(form));
  });
  $('product-remove').addEventListener('click', async () => {
    if (!editing) return;
    if (!(await confirmSheet(t('pr.remove_q', { title: editing.title }), t('pr.remove')))) return;
    try {
      await del(`/products/${editing.id}`);
      toast(t('pr.removed'));
      await go('/studio', { replace: true });
    } catch (problem) {
      showProblem(form, problem);
    }
  });
}

async function save(form) {
  clearErrors(form);
  const price = parseYuan(form.elements.price.value);
  if (price === null || price <= 0) {
    fieldError(form, 'price_fen', t('e.price'));
    return;
  }
  const stockText = String(form.elements.stock.value).trim();
  if (!/^\d+$/.test(stockText)) {
    fieldError(form, 'stock', t('e.stock'));
    return;
  }
  const presale = $('presale').checked;
  const body = {
    title: form.elements.title.value.trim(),
    description: form.elements.description.value.trim(),
    unit: form.elements.unit.value.trim(),
    price_fen: price,
    stock: Number(stockText),
    ships_on: presale ? form.elements.ships_on.value : null,
  };
  if (presale && !body.ships_on) {
    fieldError(form, 'ships_on', t('e.required'));
    return;
  }
  let saved;
  try {
    saved = editing ? await patch(`/products/${editing.id}`, body) : await post(`/shops/${ctx.shopId}/products`, body);
  } catch (problem) {
    showProblem(form, problem);
    return;
  }
  if (picker.picked) {
    try {
      await uploadPhoto(`/products/${encodeURIComponent(saved.id)}/photo`, picker.picked);
    } catch (problem) {
      // The product is saved; only the photo needs another try.
      editing = saved;
      showProblem(form, { code: 'validation_failed', errors: [{ field: 'photo', code: problem.code, params: problem.params }] });
      return;
    }
  }
  toast(t('common.saved'));
  await go('/studio', { replace: true });
}

export async function view(productId) {
  const form = $('form-product');
  clearErrors(form);
  form.reset();
  editing = productId ? await get(`/products/${productId}`) : null;
  const title = $('product-form-title');
  title.dataset.i18n = editing ? 'pr.edit_title' : 'pr.new_title';
  title.textContent = t(title.dataset.i18n);
  $('product-remove').hidden = !editing;
  if (editing) {
    form.elements.title.value = editing.title;
    form.elements.description.value = editing.description;
    form.elements.unit.value = editing.unit;
    form.elements.price.value = fenToYuanText(editing.price_fen);
    form.elements.stock.value = String(editing.stock);
    $('presale').checked = Boolean(editing.ships_on);
    form.elements.ships_on.value = editing.ships_on || '';
  } else {
    form.elements.stock.value = '0';
  }
  picker.set(editing ? editing.photo : null);
  $('ships-on-field').hidden = !$('presale').checked;
  show('view-product');
}
