// The escalation queue: every escalated task with its clips, the model's
// guess and every verdict, and a form to settle it. The list refreshes by
// itself, except for cards a supervisor is working on.

import { call } from './api.js';

const list = document.getElementById('escalations');
const status = document.getElementById('escalations-status');
const template = document.getElementById('escalation-template');
const REFRESH_MS = 15000;
const cards = new Map(); // task id -> card element

const money = (cents) => (cents / 100).toFixed(2);
const el = (tag, text, className) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
};

function answerText(v) {
  if (v.cant_tell) return "can't tell";
  if (v.action === 'none') return 'nothing happened';
  const verb = v.action === 'pick' ? 'took' : 'put back';
  return `${verb} ${v.quantity ?? ''} × ${v.sku ?? '?'}`;
}

function deadlineText(iso) {
  const left = Date.parse(iso) - Date.now();
  const minutes = Math.round(Math.abs(left) / 60000);
  return left >= 0 ? `receipt due in ${minutes} min` : `receipt ${minutes} min late`;
}

function renderClips(host, detail) {
  for (const clip of detail.task.clips) {
    const figure = el('figure', undefined, 'player');
    if (clip.video_url) {
      const video = document.createElement('video');
      video.controls = true;
      video.preload = 'metadata';
      video.muted = true;
      video.playsInline = true;
      if (clip.poster_url) video.poster = clip.poster_url;
      video.src = clip.video_url + (clip.event_offset_ms != null ? `#t=${clip.event_offset_ms / 1000}` : '');
      figure.append(video);
    } else {
      const missing = el('div', undefined, 'unavailable');
      missing.append(el('strong', 'No video'), el('span', clip.error?.message ?? clip.status));
      figure.append(missing);
    }
    figure.append(el('figcaption', clip.camera_id));
    host.append(figure);
  }
  if (!detail.task.clips.length) host.append(el('p', 'No clips for this event.', 'muted'));
}

function fillProducts(select, detail, extra = []) {
  const seen = new Set();
  select.replaceChildren();
  for (const p of [...detail.task.candidates, ...extra]) {
    if (seen.has(p.sku)) continue;
    seen.add(p.sku);
    const label = p.confidence != null
      ? `${p.name} (${p.sku}) · model ${(p.confidence * 100).toFixed(0)} %`
      : `${p.name} (${p.sku})`;
    const option = el('option', label);
    option.value = p.sku;
    select.append(option);
  }
}

function card(detail) {
  const node = template.content.firstElementChild.cloneNode(true);
  const task = detail.task;
  node.id = 'escalation-' + task.task_id;
  node.dataset.taskId = task.task_id;
  node.querySelector('.reason').textContent = task.reason;
  node.querySelector('.escalation-reason').textContent = detail.escalation_reason ?? 'escalated';
  node.querySelector('.where').textContent = `event ${task.event_id} · session ${task.session_id}`;
  const deadline = node.querySelector('.deadline');
  deadline.textContent = deadlineText(task.deadline_at);
  deadline.classList.toggle('late', Date.parse(task.deadline_at) < Date.now());
  renderClips(node.querySelector('.clips'), detail);

  node.querySelector('.model').textContent =
    `${task.kind} × ${task.quantity}` + (task.model_version ? ` · ${task.model_version}` : '');
  const guesses = node.querySelector('.guesses');
  for (const c of task.candidates) {
    const li = el('li');
    li.append(el('span', `${c.name} (${c.sku}) · ${money(c.price_cents)}`), el('span', `${(c.confidence * 100).toFixed(1)} %`, 'confidence'));
    guesses.append(li);
  }
  const verdicts = node.querySelector('.verdicts');
  for (const v of detail.verdicts) {
    const li = el('li');
    li.append(el('strong', v.labeler), el('span', ' ' + answerText(v)), el('span', ` · ${(v.handling_ms / 1000).toFixed(1)} s`, 'muted'));
    if (v.note) li.append(el('q', v.note, 'note'));
    verdicts.append(li);
  }
  if (!detail.verdicts.length) verdicts.append(el('li', 'No verdicts.', 'muted'));

  const form = node.querySelector('form');
  const select = form.querySelector('.sku');
  const quantity = form.querySelector('.quantity');
  quantity.value = task.quantity;
  fillProducts(select, detail);
  let action = null;
  const actionButtons = form.querySelectorAll('[data-action]');
  const choose = (a) => {
    action = a;
    for (const b of actionButtons) b.setAttribute('aria-pressed', String(b.dataset.action === a));
    select.disabled = quantity.disabled = a === 'none';
    node.dataset.editing = 'true';
  };
  for (const b of actionButtons) b.addEventListener('click', () => choose(b.dataset.action));
  // Start from the answer most labelers gave, if any, else the model's guess.
  const labelled = detail.verdicts.find((v) => !v.cant_tell && v.action);
  choose(labelled?.action ?? task.kind);
  if (labelled?.sku) select.value = labelled.sku;
  if (labelled?.quantity) quantity.value = labelled.quantity;
  delete node.dataset.editing;

  const search = form.querySelector('.catalog-search');
  let searchSeq = 0;
  search.addEventListener('input', async () => {
    node.dataset.editing = 'true';
    const q = search.value.trim();
    const seq = ++searchSeq;
    if (!q) return fillProducts(select, detail);
    try {
      const found = await call('GET', `/api/v1/tasks/${encodeURIComponent(task.task_id)}/products?q=${encodeURIComponent(q)}`);
      if (seq !== searchSeq) return;
      fillProducts(select, { task: { candidates: [] } }, found);
    } catch (err) {
      formStatus(form, 'Search failed: ' + err.message, true);
    }
  });
  form.addEventListener('input', () => { node.dataset.editing = 'true'; });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    resolve(node, form, task, action);
  });
  return node;
}

function formStatus(form, text, error = false) {
  const s = form.querySelector('.form-status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

async function resolve(node, form, task, action) {
  const button = form.querySelector('button[type=submit]');
  const body = { action };
  if (action !== 'none') {
    body.sku = form.querySelector('.sku').value;
    body.quantity = Number(form.querySelector('.quantity').value);
  }
  const note = form.querySelector('.note').value.trim();
  if (note) body.note = note;
  button.disabled = true;
  formStatus(form, 'Resolving…');
  try {
    await call('POST', `/api/v1/tasks/${encodeURIComponent(task.task_id)}/resolve`, body);
    let done = 'Resolved: the receipt can be finalized.';
    if (form.querySelector('.make-gold').checked) {
      try {
        await call('POST', '/api/v1/gold', { task_id: task.task_id });
        done += ' Added as a gold task.';
      } catch (err) {
        done += ' Not added as gold: ' + err.message;
      }
    }
    node.classList.add('resolved');
    node.dataset.resolved = 'true';
    formStatus(form, done);
    setTimeout(() => {
      node.remove();
      cards.delete(task.task_id);
      updateStatus();
    }, 1500);
  } catch (err) {
    button.disabled = false;
    formStatus(form, 'Not resolved: ' + err.message, true);
    if (err.code === 'task-not-escalated') node.classList.add('resolved');
  }
}

function updateStatus() {
  const n = cards.size;
  status.textContent = n === 0 ? 'No escalated tasks. Nothing waits for a supervisor.' : `${n} escalated task${n === 1 ? '' : 's'}, most urgent first.`;
}

async function load() {
  try {
    const details = await call('GET', '/api/v1/escalations?limit=100');
    const ids = new Set(details.map((d) => d.task.task_id));
    for (const [id, node] of cards) {
      if (!ids.has(id) && !node.dataset.editing && !node.dataset.resolved) {
        node.remove();
        cards.delete(id);
      }
    }
    for (const d of details) {
      if (cards.has(d.task.task_id)) continue;
      const node = card(d);
      cards.set(d.task.task_id, node);
      list.append(node);
    }
    updateStatus();
  } catch (err) {
    status.textContent = 'Could not load escalations: ' + err.message;
  }
  setTimeout(load, REFRESH_MS);
}

load();
