// The dashboard: login, the page the location's hash names, and the header.
//
// Pages: #/ overview, #/jobs?state=&queue=&text=&before= the jobs, #/jobs/ID
// one job, #/workers the workers, #/flows?before= the flows, #/flows/ID one
// flow. Each page module exports mount(main, parameters, context) and
// returns a function that unmounts it (stops its event stream and timers).
// Filters live in the hash, so a view can be bookmarked or shared — and the
// token never is: it is asked once and kept in this tab's sessionStorage
// (see api.js).

import { get, token, setToken, onUnauthorized, call, ApiError } from './api.js';
import { h } from './dom.js';
import * as overview from './pages/overview.js';
import * as jobs from './pages/jobs.js';
import * as job from './pages/job.js';
import * as workers from './pages/workers.js';
import * as flows from './pages/flows.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const live = document.getElementById('live');
const logout = document.getElementById('logout');
const banner = document.getElementById('banner');

let unmount = () => {};
let signedIn = false;

const routes = [
  [/^\/?$/, 'overview', overview],
  [/^\/jobs$/, 'jobs', jobs],
  [/^\/jobs\/([1-9][0-9]*)$/, 'jobs', job],
  [/^\/workers$/, 'workers', workers],
  [/^\/flows$/, 'flows', flows],
  [/^\/flows\/([1-9][0-9]*)$/, 'flows', flows],
];

const context = {
  // The event stream's state, shown in the header.
  status(state) {
    live.hidden = false;
    live.textContent = { live: 'live', reconnecting: 'reconnecting…', stopped: 'not live' }[state];
    live.className = `live is-${state}`;
  },
  // A problem worth a line at the top (cleared on the next page).
  problem(error) {
    if (error?.name === 'AbortError') return;
    banner.hidden = false;
    banner.textContent = error instanceof ApiError ? `${error.message}` : String(error);
  },
  clear() {
    banner.hidden = true;
    banner.textContent = '';
  },
};

function show() {
  if (!signedIn) return;
  unmount();
  context.clear();
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const parameters = Object.fromEntries(new URLSearchParams(search));
  for (const [pattern, name, page] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of nav.querySelectorAll('a'))
      link.classList.toggle('current', link.dataset.page === name);
    if (match[1]) parameters.id = match[1];
    main.replaceChildren();
    unmount = page.mount(main, parameters, context) ?? (() => {});
    return;
  }
  unmount = () => {};
  main.replaceChildren(
    h('h1', {}, 'No such page'),
    h('p', {}, h('a', { href: '#/' }, 'Back to the overview')),
  );
}

function signIn() {
  signedIn = true;
  nav.hidden = false;
  logout.hidden = !token();
  show();
}

function showLogin(message = '') {
  signedIn = false;
  unmount();
  unmount = () => {};
  nav.hidden = true;
  live.hidden = true;
  logout.hidden = true;
  context.clear();
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    spellcheck: 'false',
  });
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert' }, message);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { id: 'login', class: 'login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This server asks for its token (the one given to ferry server).'),
    h('label', { for: 'token' }, 'Token'),
    input,
    button,
    error,
    h(
      'p',
      { class: 'muted small' },
      'Kept in this tab only, until it closes, and sent as an Authorization header.',
    ),
  );
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    const candidate = input.value.trim();
    if (!candidate) return;
    button.disabled = true;
    error.textContent = '';
    try {
      await call('GET', '/v1/stats', undefined, { tokenToTry: candidate });
      setToken(candidate);
      signIn();
    } catch (problem) {
      error.textContent =
        problem.status === 401 ? 'The server refused this token.' : problem.message;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

onUnauthorized(() => {
  const had = token();
  setToken('');
  showLogin(had ? 'The server no longer takes the token this tab held.' : '');
});

logout.addEventListener('click', () => {
  setToken('');
  showLogin();
});

window.addEventListener('hashchange', show);

// A server without a token answers at once; one with a token asks for it.
async function start() {
  try {
    await get('/v1/stats');
    signIn();
  } catch (problem) {
    if (problem.status !== 401) {
      signedIn = false;
      main.replaceChildren(h('p', { class: 'error' }, `The server did not answer: ${problem.message}`));
    }
  }
}

start();
