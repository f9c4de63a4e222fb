// Sharing a link: the phone's own share sheet where the browser has one,
// otherwise copy to the clipboard and say so.

import { t } from './i18n.js';
import { toast } from './dom.js';

const inWeChat = () => /MicroMessenger/i.test(navigator.userAgent);

/** Copies text; true when it worked. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* fall back below */ }
  // Older in-app browsers: a selected, off-screen textarea and execCommand.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.append(area);
  area.select();
  let ok;
  try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  area.remove();
  return ok;
}

export async function shareLink({ url, title, text }) {
  if (navigator.share && !inWeChat()) {
    try {
      await navigator.share({ url, title, text });
      return;
    } catch (e) {
      if (e && e.name === 'AbortError') return; // they closed the sheet
    }
  }
  if (await copyText(url)) {
    toast(inWeChat() ? `${t('share.copied')}。${t('viewer.wechat_hint')}` : t('share.copied'), 4000);
  } else {
    toast(`${t('share.copy_failed')} ${url}`, 8000);
  }
}
