// Photos of shops and products: picked (or taken) on the phone, shrunk on
// the phone before they travel over a rural link, uploaded as the request
// body. The server decodes, turns upright, strips EXIF and resizes them
// again whatever the page sent.

import { el, icon } from './dom.js';
import { problemFrom, ApiProblem } from './api.js';
import { t } from './i18n.js';

/** Longest side sent: enough for the server's 1280 px, a tenth of a raw photo. */
const SEND_SIDE = 1600;
const SEND_QUALITY = 0.85;

/** The card-sized version of a photo URL (`…/large.jpg` → `…/small.jpg`). */
export function smallPhoto(url) {
  return url ? String(url).replace(/\/large\.jpg$/, '/small.jpg') : url;
}

/**
 * A JPEG of at most SEND_SIDE px, drawn upright (the browser applies EXIF
 * orientation when decoding). The original when the browser cannot.
 */
export async function shrinkPhoto(file) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    const scale = Math.min(1, SEND_SIDE / Math.max(bitmap.width, bitmap.height));
    if (scale === 1 && file.type === 'image/jpeg' && file.size < 1_500_000) return file;
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', SEND_QUALITY));
    return blob || file;
  } catch (_) {
    return file;
  }
}

/** PUTs a picture to `/api/v1{path}`; resolves to the photo, or throws an ApiProblem. */
export async function uploadPhoto(path, blob) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method: 'PUT',
      credentials: 'same-origin',
      headers: { 'content-type': blob.type || 'image/jpeg', accept: 'application/json' },
      body: blob,
    });
  } catch (_) {
    throw new ApiProblem(0, { code: 'network' });
  }
  if (!res.ok) throw await problemFrom(res);
  return res.json();
}

/**
 * A photo picker for a form: the current photo (or an empty frame), and a
 * button that opens the phone's camera or gallery. `.picked` is the
 * chosen picture (already shrunk) until the form saves it; `.set(url)`
 * shows a saved one.
 */
export function photoPicker({ labelKey }) {
  const input = el('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp,image/*', class: 'photo-input', 'aria-label': t(labelKey) });
  const preview = el('span', { class: 'photo-preview' }, icon('camera'));
  const words = el('span', { text: t('photo.pick') });
  const button = el('button', { type: 'button', class: 'btn btn-secondary btn-small photo-button' }, icon('camera'), words);
  const error = el('span', { class: 'field-error', 'data-error-for': 'photo' });
  const node = el('div', { class: 'field photo-field' },
    el('span', { class: 'field-label', text: t(labelKey) }),
    el('div', { class: 'photo-row' }, preview, el('div', { class: 'photo-side' }, button, el('span', { class: 'muted small', text: t('photo.hint') }))),
    input, error);
  const picker = {
    node,
    picked: null,
    show(src) {
      preview.replaceChildren(src ? el('img', { src, alt: '' }) : icon('camera'));
      words.textContent = t(src ? 'photo.change' : 'photo.pick');
    },
    set(url) {
      picker.picked = null;
      error.textContent = '';
      picker.show(smallPhoto(url));
    },
  };
  button.addEventListener('click', () => input.click());
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    error.textContent = '';
    picker.picked = await shrinkPhoto(file);
    picker.show(URL.createObjectURL(picker.picked));
  });
  return picker;
}
