// Schedule a broadcast: a title and, if the farmer knows it, a time.

import { $ } from '../dom.js';
import { post } from '../api.js';
import { showProblem, clearErrors, busy } from '../forms.js';
import { ctx, show, go } from './context.js';

export function init() {
  const form = $('form-broadcast');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, async () => {
      clearErrors(form);
      const local = form.elements.scheduled_at.value;
      const when = local ? new Date(local) : null;
      const body = { title: form.elements.title.value.trim() };
      // datetime-local is the phone's local time; the API wants RFC 3339 UTC.
      if (when && !Number.isNaN(when.getTime())) body.scheduled_at = when.toISOString();
      try {
        const b = await post(`/shops/${ctx.shopId}/broadcasts`, body);
        form.reset();
        await go(`/studio/broadcasts/${encodeURIComponent(b.id)}`, { replace: true });
      } catch (problem) {
        showProblem(form, problem);
      }
    });
  });
}

export function view() {
  const form = $('form-broadcast');
  clearErrors(form);
  show('view-schedule');
  form.elements.title.focus();
}
