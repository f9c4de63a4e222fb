// Sign in and sign up (mobile number + password).

import { $ } from '../dom.js';
import { post } from '../api.js';
import { showProblem, clearErrors, busy, requireFilled } from '../forms.js';
import { ctx, show, go } from './context.js';

function selectTab(which) {
  const signin = which === 'signin';
  $('tab-signin').setAttribute('aria-selected', String(signin));
  $('tab-signup').setAttribute('aria-selected', String(!signin));
  $('form-signin').hidden = !signin;
  $('form-signup').hidden = signin;
}

export function init() {
  $('tab-signin').addEventListener('click', () => selectTab('signin'));
  $('tab-signup').addEventListener('click', () => selectTab('signup'));

  const signin = $('form-signin');
  signin.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(signin, async () => {
      clearErrors(signin);
      if (!requireFilled(signin, ['mobile', 'password'])) return;
      try {
        ctx.me = await post('/session', {
          mobile: signin.elements.mobile.value.trim(),
          password: signin.elements.password.value,
        });
        signin.reset();
        await go('/studio', { replace: true });
      } catch (problem) {
        showProblem(signin, problem);
      }
    });
  });

  const signup = $('form-signup');
  signup.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(signup, async () => {
      clearErrors(signup);
      if (!requireFilled(signup, ['mobile', 'display_name', 'password'])) return;
      try {
        ctx.me = await post('/accounts', {
          mobile: signup.elements.mobile.value.trim(),
          display_name: signup.elements.display_name.value.trim(),
          password: signup.elements.password.value,
        });
        signup.reset();
        await go('/studio', { replace: true });
      } catch (problem) {
        showProblem(signup, problem);
        if (problem.code === 'mobile_taken') {
          signin.elements.mobile.value = signup.elements.mobile.value;
        }
      }
    });
  });
}

export function view() {
  show('view-auth');
}
