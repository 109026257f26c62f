// Training-data exports: a form that starts one through the API, and the
// list of exports, polled while any is still running, with download links
// for the files of finished ones.

import { call } from './api.js';

const form = document.getElementById('new-export');
const status = document.getElementById('export-status');
const body = document.querySelector('#exports-table tbody');
/** How often the list is polled while an export runs. */
const POLL_MS = 1500;

const cell = (text, tag = 'td') => {
  const c = document.createElement(tag);
  c.textContent = text;
  return c;
};

function size(bytes) {
  if (bytes >= 1e9) return (bytes / 1e9).toFixed(2) + ' GB';
  if (bytes >= 1e6) return (bytes / 1e6).toFixed(1) + ' MB';
  if (bytes >= 1e3) return (bytes / 1e3).toFixed(1) + ' kB';
  return bytes + ' B';
}

/** The request body the form describes. */
function spec() {
  const checked = (name) =>
    [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  const time = (id) => {
    const v = document.getElementById(id).value;
    return v ? new Date(v).getTime() : null;
  };
  const filter = {
    stores: checked('store'),
    model_versions: document
      .getElementById('export-models')
      .value.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    resolutions: checked('resolution'),
    hard_only: document.getElementById('export-hard').checked,
  };
  const from = time('export-from');
  const to = time('export-to');
  if (from != null) filter.from_ms = from;
  if (to != null) filter.to_ms = to;
  const agreement = document.getElementById('export-agreement').value;
  if (agreement !== '') filter.min_agreement = Number(agreement);
  return {
    filter,
    include_video: document.getElementById('export-video').checked,
    shard_bytes: Math.round(Number(document.getElementById('export-shard').value) * 1e6),
    split: { seed: document.getElementById('export-seed').value || 'recount' },
  };
}

function progressCell(x) {
  const c = document.createElement('td');
  if (x.status === 'done' || x.status === 'deleted' || x.status === 'failed') {
    c.textContent = x.status === 'done' ? 'complete' : '—';
    return c;
  }
  const bar = document.createElement('progress');
  bar.max = Math.max(x.total ?? 0, 1);
  bar.value = x.progress;
  bar.setAttribute('aria-label', 'events looked at');
  c.append(bar, ` ${x.progress} / ${x.total ?? '…'}`);
  return c;
}

function filesCell(x) {
  const c = document.createElement('td');
  if (x.status === 'failed') {
    c.textContent = x.error ?? 'failed';
    c.className = 'bad';
    return c;
  }
  if (x.status === 'deleted') {
    c.textContent = `Deleted ${new Date(x.deleted_at).toLocaleString()}`;
    c.className = 'muted';
    return c;
  }
  const list = document.createElement('ul');
  list.className = 'files';
  for (const f of x.files) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = f.url;
    a.textContent = f.name;
    a.setAttribute('download', f.name);
    li.append(a, ` ${size(f.bytes)}`);
    list.append(li);
  }
  c.append(list);
  return c;
}

/**
 * Exports whose delete button was clicked once: the list is rebuilt at
 * every poll, and a button waiting for its confirmation must stay armed.
 */
const armed = new Set();

function arm(button) {
  button.classList.add('armed');
  button.textContent = 'Confirm delete';
}

/**
 * A delete button that asks for a second click before it deletes, so a
 * stray click never removes a dataset someone is training on.
 */
function actionsCell(x) {
  const c = document.createElement('td');
  if (x.status === 'deleted') return c;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'danger delete-export';
  button.textContent = 'Delete';
  button.setAttribute('aria-label', `Delete the export started ${new Date(x.created_at).toLocaleString()}`);
  if (armed.has(x.export_id)) arm(button);
  button.addEventListener('click', async () => {
    if (!armed.has(x.export_id)) {
      armed.add(x.export_id);
      arm(button);
      return;
    }
    button.disabled = true;
    try {
      await call('DELETE', `/api/v1/exports/${x.export_id}`);
      armed.delete(x.export_id);
      status.textContent = 'Deleted.';
      await load();
    } catch (err) {
      status.textContent = 'Not deleted: ' + err.message;
      button.disabled = false;
    }
  });
  c.append(button);
  return c;
}

let timer = null;

async function load() {
  const exports = await call('GET', '/api/v1/exports', undefined, { retries: 2 });
  body.replaceChildren();
  // How many times the list was drawn (tests wait for a redraw with it).
  body.dataset.loads = String(Number(body.dataset.loads ?? 0) + 1);
  for (const x of exports) {
    const row = document.createElement('tr');
    row.id = 'export-' + x.export_id;
    row.dataset.status = x.status;
    row.append(
      cell(new Date(x.created_at).toLocaleString(), 'th'),
      cell(x.status),
      progressCell(x),
      cell(String(x.samples)),
      cell(size(x.bytes)),
      filesCell(x),
      actionsCell(x),
    );
    body.append(row);
  }
  if (!exports.length) {
    const row = document.createElement('tr');
    const c = cell('No exports yet.');
    c.colSpan = 7;
    c.className = 'muted';
    row.append(c);
    body.append(row);
  }
  clearTimeout(timer);
  if (exports.some((x) => x.status === 'queued' || x.status === 'running')) {
    timer = setTimeout(() => load().catch(() => {}), POLL_MS);
  }
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const button = document.getElementById('start-export');
  button.disabled = true;
  try {
    await call('POST', '/api/v1/exports', spec());
    status.textContent = 'Started.';
    await load();
  } catch (err) {
    status.textContent = 'Not started: ' + err.message;
  } finally {
    button.disabled = false;
  }
});

load().catch((err) => {
  status.textContent = 'Could not load: ' + err.message;
});
