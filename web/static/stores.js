// A store's page: saves its settings, switches training consent, sends a
// test delivery, rotates its secret and key (the new one shown once), and
// lists its receipt deliveries with a redelivery for those that gave up.

import { call } from './api.js';

const root = document.getElementById('store');
const id = root.dataset.storeId;
const canChange = root.dataset.canChange === 'true';
const status = document.getElementById('store-status');
const secret = document.getElementById('store-secret');
const filter = document.getElementById('delivery-filter');
const body = document.querySelector('#deliveries tbody');
const base = `/api/v1/stores/${encodeURIComponent(id)}`;

function say(text) {
  status.textContent = text;
}

function showSecret(what, value) {
  secret.hidden = false;
  secret.textContent = '';
  const strong = document.createElement('strong');
  strong.className = 'password';
  strong.textContent = value;
  secret.append(`${what}, shown this once: `, strong);
  secret.tabIndex = -1;
  secret.focus();
}

const cell = (text) => {
  const c = document.createElement('td');
  c.textContent = text;
  return c;
};

function row(d) {
  const tr = document.createElement('tr');
  tr.dataset.status = d.status;
  const actions = document.createElement('td');
  if (canChange && d.status === 'dead') {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'ghost';
    b.textContent = 'Send again';
    b.setAttribute('aria-label', `Send the receipt of ${d.session_id ?? d.delivery_id} again`);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await call('POST', `${base}/deliveries/${encodeURIComponent(d.delivery_id)}/redeliver`);
        say('Queued again.');
        await load();
      } catch (err) {
        say(`Not queued: ${err.message}`);
        b.disabled = false;
      }
    });
    actions.append(b);
  }
  tr.append(
    cell(new Date(d.created_at).toLocaleString()),
    cell(d.session_id ?? '—'),
    cell(String(d.version)),
    cell(d.status),
    cell(String(d.attempts)),
    cell(d.last_error ?? ''),
    actions,
  );
  return tr;
}

async function load() {
  const q = filter.value ? `?status=${filter.value}` : '';
  const list = await call('GET', `${base}/deliveries${q}`, undefined, { retries: 2 });
  body.replaceChildren(...list.map(row));
  if (list.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('No deliveries.');
    td.colSpan = 7;
    td.className = 'muted';
    tr.append(td);
    body.append(tr);
  }
}

filter.addEventListener('change', () => load().catch((e) => say(e.message)));

if (canChange) {
  document.getElementById('store-settings').addEventListener('submit', async (e) => {
    e.preventDefault();
    const url = document.getElementById('store-webhook').value.trim();
    try {
      await call('PATCH', base, {
        name: document.getElementById('store-name').value,
        webhook_url: url === '' ? null : url,
        media_retention_days: Number(document.getElementById('store-retention').value),
      });
      await call('PUT', `${base}/training`, {
        allowed: document.getElementById('store-training').checked,
      });
      say('Saved.');
    } catch (err) {
      say(`Not saved: ${err.message}`);
    }
  });
  document.getElementById('test-webhook').addEventListener('click', async () => {
    say('Sending…');
    try {
      const r = await call('POST', `${base}/webhook-test`);
      say(r.delivered
        ? `Delivered: the store answered ${r.status} in ${r.took_ms} ms.`
        : `Not delivered: ${r.error}`);
    } catch (err) {
      say(`Not sent: ${err.message}`);
    }
  });
  document.getElementById('rotate-secret').addEventListener('click', async () => {
    try {
      const r = await call('POST', `${base}/webhook-secret/rotate`);
      showSecret('New webhook secret', r.webhook_secret);
      say(`The old secret signs beside it until ${new Date(r.previous_valid_until).toLocaleString()}.`);
    } catch (err) {
      say(`Not rotated: ${err.message}`);
    }
  });
  const rotateKey = document.getElementById('rotate-key');
  rotateKey.addEventListener('click', async () => {
    // A second click confirms: the old key stops working at once.
    if (!rotateKey.classList.contains('armed')) {
      rotateKey.classList.add('armed');
      rotateKey.textContent = 'Confirm: rotate the API key';
      return;
    }
    try {
      const r = await call('POST', `${base}/api-key/rotate`);
      showSecret('New API key', r.api_key);
      say('The old key no longer works.');
    } catch (err) {
      say(`Not rotated: ${err.message}`);
    }
    rotateKey.classList.remove('armed');
    rotateKey.textContent = 'Rotate the API key';
  });
}

load().catch((err) => say(`Deliveries could not be loaded: ${err.message}`));
