// Moderators: the owner appoints people (by the mobile number they signed
// up with), sees who they are, removes them, reads the moderation log and
// lifts bans.
// And the first screen of an account that moderates other shops.

import { $, el, icon, toast } from '../dom.js';
import { get, post, del } from '../api.js';
import { t, formatTime, formatDate } from '../i18n.js';
import { showProblem, clearErrors, busy, describe, requireFilled } from '../forms.js';
import { ctx, show, go, confirmSheet } from './context.js';
import { logLine } from '../live/moderation.js';
import './words.js';

let moderators = [];

export function init() {
  const form = $('form-moderator');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, async () => {
      clearErrors(form);
      if (!requireFilled(form, ['mobile'])) return;
      try {
        const m = await post(`/shops/${encodeURIComponent(ctx.shopId)}/moderators`, { mobile: form.elements.mobile.value.trim() });
        form.reset();
        toast(t('mods.appointed', { name: m.display_name }));
        await loadList();
      } catch (problem) {
        // "Already a moderator" is about the number typed: show it there.
        if (problem.code === 'already_moderator') problem.errors = [{ field: 'mobile', code: 'already_moderator' }];
        showProblem(form, problem);
      }
    });
  });
  $('mod-sign-out').addEventListener('click', async () => {
    try { await del('/session'); } catch (_) { /* signed out either way */ }
    ctx.me = null;
    await go('/studio', { replace: true });
  });
  document.addEventListener('langchange', () => {
    if (!$('view-moderators').hidden) { renderList(); renderLog(); renderBans(); }
  });
}

function renderList() {
  $('moderator-list').replaceChildren(...moderators.map((m) => {
    const remove = el('button', { type: 'button', class: 'btn btn-danger-quiet btn-small' }, icon('close'), el('span', { text: t('mods.remove') }));
    remove.addEventListener('click', async () => {
      if (!(await confirmSheet(t('mods.remove_q', { name: m.display_name }), t('mods.remove')))) return;
      try {
        await del(`/shops/${encodeURIComponent(ctx.shopId)}/moderators/${encodeURIComponent(m.user_id)}`);
        toast(t('mods.removed'));
        await loadList();
      } catch (problem) {
        toast(describe(problem), 4000);
      }
    });
    return el('li', { class: 'row mod-row', data: { user: m.user_id } },
      icon('shield'),
      el('span', { class: 'row-main' },
        el('span', { class: 'row-title', text: m.display_name }),
        el('span', { class: 'row-sub' }, el('span', { text: m.mobile }), el('span', { text: t('mods.since', { date: formatDate(m.appointed_at.slice(0, 10)) }) }))),
      remove);
  }));
  $('moderators-empty').hidden = moderators.length > 0;
}

async function loadList() {
  moderators = await get(`/shops/${encodeURIComponent(ctx.shopId)}/moderators`);
  renderList();
}

let log = [];

function renderLog() {
  const list = $('studio-mod-log');
  if (!log.length) {
    list.replaceChildren(el('li', { class: 'muted', text: t('mod.log_empty') }));
    return;
  }
  list.replaceChildren(...log.map((e) => logLine(e)));
}

let bans = [];

function renderBans() {
  $('ban-list').replaceChildren(...bans.map((b) => {
    const name = b.name || t('mod.someone');
    const lift = el('button', { type: 'button', class: 'btn btn-quiet btn-small' }, icon('check'), el('span', { text: t('bans.lift') }));
    lift.addEventListener('click', async () => {
      if (!(await confirmSheet(t('bans.lift_q', { name }), t('bans.lift')))) return;
      try {
        await del(`/shops/${encodeURIComponent(ctx.shopId)}/bans/${encodeURIComponent(b.subject)}`);
        toast(t('bans.lifted'));
        await loadBans();
      } catch (problem) {
        toast(describe(problem), 4000);
      }
    });
    return el('li', { class: 'row', data: { subject: b.subject } },
      icon('shield'),
      el('span', { class: 'row-main' },
        el('span', { class: 'row-title', text: name }),
        el('span', { class: 'row-sub' },
          el('span', { text: formatTime(b.created_at) }),
          b.reason ? el('span', { text: t('bans.reason', { reason: b.reason }) }) : null)),
      lift);
  }));
  $('bans-empty').hidden = bans.length > 0;
}

async function loadBans() {
  bans = await get(`/shops/${encodeURIComponent(ctx.shopId)}/bans`).catch(() => []);
  renderBans();
}

export async function view() {
  const form = $('form-moderator');
  clearErrors(form);
  form.reset();
  const [list, entries] = await Promise.all([
    get(`/shops/${encodeURIComponent(ctx.shopId)}/moderators`),
    get(`/shops/${encodeURIComponent(ctx.shopId)}/moderation-log?limit=100`).catch(() => []),
  ]);
  moderators = list;
  log = entries;
  renderList();
  renderLog();
  await loadBans();
  show('view-moderators');
}

// ── an account that moderates other people's shops ────────────────────

export function moderatedShops() {
  return (ctx.me?.shops || []).filter((s) => s.role === 'moderator');
}

export async function home() {
  $('mod-me-name').textContent = ctx.me.display_name;
  const shops = moderatedShops();
  const blocks = await Promise.all(shops.map(async (s) => {
    let broadcasts;
    try {
      broadcasts = (await get(`/shops/${encodeURIComponent(s.id)}/broadcasts`)).filter((b) => b.state !== 'ended');
    } catch (_) { broadcasts = []; }
    const order = { live: 0, scheduled: 1 };
    broadcasts.sort((a, b) => order[a.state] - order[b.state]);
    return el('section', { class: 'card' },
      el('h2', { class: 'section-title' }, icon('shop'), el('span', { text: s.name })),
      broadcasts.length
        ? el('ul', { class: 'row-list' }, ...broadcasts.map((b) => el('li', {},
          el('a', { class: `row row-${b.state}`, href: `/live/${encodeURIComponent(b.id)}` },
            el('span', { class: 'row-main' },
              el('span', { class: 'row-title', text: b.title }),
              el('span', { class: 'row-sub' },
                el('span', { class: 'state-chip', data: { state: b.state } }, el('span', { class: 'dot' }), t(`state.${b.state}`)),
                el('span', { text: b.scheduled_at ? formatTime(b.scheduled_at) : '' }))),
            el('span', { class: 'row-action' }, icon('shield'), t('modhome.open'))))))
        : el('p', { class: 'empty', text: t('modhome.none') }));
  }));
  $('modhome-shops').replaceChildren(...blocks);
  show('view-modhome');
}
