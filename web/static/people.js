// People: the list from the API, with each person's actions (pause and
// resume, disable and enable, sign out everywhere, reset the password),
// and a form that adds a person. A generated password is shown once in an
// alert and never again.

import { call } from './api.js';

const body = document.querySelector('#people-table tbody');
const status = document.getElementById('people-status');
const secret = document.getElementById('people-secret');
const form = document.getElementById('add-person');
const names = JSON.parse(document.getElementById('store-names').textContent);

const cell = (text) => {
  const c = document.createElement('td');
  c.textContent = text;
  return c;
};

function showSecret(who, password) {
  secret.hidden = false;
  secret.textContent = '';
  const strong = document.createElement('strong');
  strong.textContent = password;
  strong.className = 'password';
  secret.append(`Password for ${who}, shown this once: `, strong);
  secret.tabIndex = -1;
  secret.focus();
}

function storesText(p) {
  if (p.all_stores) return 'every store';
  if (p.stores.length === 0) return 'none';
  return p.stores.map((id) => names[id] ?? id).join(', ');
}

function statusText(p) {
  if (p.disabled) return 'disabled';
  if (p.paused) return p.paused_reason ? `paused (${p.paused_reason})` : 'paused';
  return 'active';
}

function goldText(g) {
  if (g.answers === 0) return '—';
  const pct = Math.round((g.accuracy ?? 0) * 100);
  return `${g.correct}/${g.answers} (${pct} %)${g.flagged ? ' · flagged' : ''}`;
}

/** A button that runs `action` on the person and shows what happened. */
function actionButton(p, label, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'ghost';
  b.textContent = label;
  b.dataset.action = action;
  b.setAttribute('aria-label', `${label} ${p.username}`);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      const body = action === 'pause' ? {} : undefined;
      const out = await call('POST', `/api/v1/users/${encodeURIComponent(p.username)}/${action}`, body);
      if (action === 'password') showSecret(p.username, out.password);
      status.textContent = `${label}: done for ${p.username}.`;
      await load();
    } catch (err) {
      status.textContent = `${label} failed: ${err.message}`;
      b.disabled = false;
    }
  });
  return b;
}

function row(p) {
  const tr = document.createElement('tr');
  tr.dataset.username = p.username;
  if (p.gold.flagged) tr.classList.add('flagged');
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = p.username;
  const actions = document.createElement('td');
  actions.className = 'person-actions';
  const buttons = actions;
  if (p.role === 'labeler') {
    buttons.append(p.paused ? actionButton(p, 'Resume', 'resume') : actionButton(p, 'Pause', 'pause'));
  }
  buttons.append(
    p.disabled ? actionButton(p, 'Enable', 'enable') : actionButton(p, 'Disable', 'disable'),
    actionButton(p, 'Sign out', 'revoke-tokens'),
    actionButton(p, 'Reset password', 'password'),
  );
  const last = p.last_active_at ? new Date(p.last_active_at).toLocaleString() : 'never';
  const state = cell(statusText(p));
  state.className = 'state';
  tr.append(name, cell(p.role), cell(storesText(p)), state, cell(last), cell(goldText(p.gold)), actions);
  return tr;
}

async function load() {
  const people = await call('GET', '/api/v1/users', undefined, { retries: 2 });
  body.replaceChildren(...people.map(row));
  if (people.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('Nobody yet.');
    td.colSpan = 7;
    tr.append(td);
    body.append(tr);
  }
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const all = document.getElementById('person-all');
  const request = {
    username: document.getElementById('person-name').value.trim(),
    role: document.getElementById('person-role').value,
    all_stores: all?.checked ?? false,
    stores: all?.checked ? [] : [...form.querySelectorAll('input[name="store"]:checked')].map((i) => i.value),
  };
  try {
    const added = await call('POST', '/api/v1/users', request);
    showSecret(added.username, added.password);
    status.textContent = `${added.username} added.`;
    form.reset();
    await load();
  } catch (err) {
    status.textContent = `Not added: ${err.message}`;
  }
});

load().catch((err) => {
  status.textContent = `The list could not be loaded: ${err.message}`;
});
