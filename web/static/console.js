// The labeling console: claim a task, watch every camera in sync, answer
// from the keyboard, and find the next task already loaded.
//
// While a task is open the console claims the next one and lets its videos
// buffer out of sight (its lease kept alive), so an answer is followed by
// the next task at once. `?prefetch=0` in the address turns this off (the
// console bench compares both).

import { call, ApiError, transient } from './api.js';
import { install } from './keys.js';
import { Lease } from './lease.js';
import { Players } from './players.js';
import { el, formatCents, productItem } from './product.js';

const $ = (id) => document.getElementById(id);
const leaseTtlMs = Number(document.querySelector('meta[name="lease-ttl-ms"]')?.content ?? 60000);
const prefetchOn = new URLSearchParams(location.search).get('prefetch') !== '0';
let prefetchAllowed = true;
/** After a failed claim, the pause before the next. */
const EMPTY_POLL_MS = 2000;
/** How long a claim waits on the server when the queue is empty. */
const EMPTY_WAIT_MS = 20000;
const PREFETCH_RETRY_MS = 3000;

/** Everything the page knows about one claimed task. */
class Entry {
  /** `sentAt`: local time the claim was sent; null for a lease taken over. */
  constructor(claim, { hidden, sentAt }) {
    this.task = claim.task;
    this.players = new Players(claim.task, $('players-host'), { hidden });
    this.lease = new Lease(claim.task.task_id, {
      sentAt,
      ttlMs: leaseTtlMs,
      heartbeatMs: claim.heartbeat_ms,
      onLost: (err) => leaseLost(this, err),
      onTick: (ms) => this === current && showLease(ms),
    });
    this.context = null;
    this.loadContext();
  }

  async loadContext() {
    try {
      this.context = await call('GET', `/api/v1/tasks/${this.task.task_id}/context`, undefined, { retries: 3 });
      if (this === current) renderContext(this.context);
    } catch {
      // The cart is a help, not a need: the answer works without it.
    }
  }

  drop() {
    this.lease.stop();
    this.players.destroy();
  }
}

let current = null;
let next = null;
let answer = null;
let submitting = false;
let reviewing = false;
let done = 0;
let emptyTimer = null;
let prefetchTimer = null;
let searchResults = [];
let searchActive = -1;

// ---- Views ---------------------------------------------------------------

function setView(name) {
  $('console').dataset.state = name;
  for (const v of ['start', 'empty', 'lost', 'task']) $(`${v}-view`).hidden = v !== name;
  $('pause').hidden = !reviewing;
  const status = $('queue-status');
  status.classList.toggle('live', reviewing);
  status.textContent = !reviewing
    ? 'Not reviewing'
    : `Reviewing · ${done} answered${next ? ' · next task loaded' : ''}`;
}

function toast(message, { error = false } = {}) {
  const t = $('toast');
  t.textContent = message;
  t.classList.toggle('error', error);
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

function showLease(ms) {
  const s = Math.ceil(ms / 1000);
  $('lease-countdown').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  $('lease-bar').style.width = `${Math.min(100, (ms / leaseTtlMs) * 100)}%`;
  $('lease-countdown').parentElement.classList.toggle('low', ms < 15000);
}

// ---- Claiming ------------------------------------------------------------

/**
 * The next task and the local time its claim was sent, or null. With
 * `waitMs` the server answers when a task becomes ready or the wait ends;
 * when the lease began is then unknown here, so the lease learns its end
 * from a heartbeat (`sentAt` null).
 */
async function claim(waitMs = 0) {
  const sentAt = Date.now();
  const path = waitMs ? `/api/v1/tasks/claim?wait_ms=${waitMs}` : '/api/v1/tasks/claim';
  const got = await call('POST', path);
  return got && { claim: got, sentAt: waitMs ? null : sentAt };
}

/** Counts calls of `advance`, so a claim that waited learns it was overtaken. */
let advancing = 0;

/**
 * Shows the prefetched task, or claims one. When the queue is empty the
 * next claim waits on the server, which answers as soon as a task is ready.
 */
async function advance({ wait = false } = {}) {
  clearTimeout(emptyTimer);
  if (!reviewing) return;
  if (next) {
    const entry = next;
    next = null;
    present(entry);
    return;
  }
  const mine = ++advancing;
  let got;
  let failed = false;
  try {
    got = await claim(wait ? EMPTY_WAIT_MS : 0);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'too-many-leases') {
      // Another window of ours holds them: take them over here.
      if (await adoptHeld()) return;
    } else if (!transient(err)) {
      return fatal(err);
    }
    got = null;
    failed = true;
  }
  if (!reviewing || mine !== advancing) {
    // Paused, or another call took over while this claim waited.
    if (got) await call('POST', `/api/v1/tasks/${got.claim.task.task_id}/release`).catch(() => {});
    return;
  }
  if (!got) {
    setView('empty');
    emptyTimer = setTimeout(() => advance({ wait: true }), failed ? EMPTY_POLL_MS : 0);
    return;
  }
  present(new Entry(got.claim, { hidden: false, sentAt: got.sentAt }));
}

/** Claims the task after the current one and lets its video buffer. */
async function prefetch() {
  clearTimeout(prefetchTimer);
  if (!prefetchOn || !prefetchAllowed || !reviewing || next || !current) return;
  const owner = current;
  let got = null;
  try {
    got = await claim();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'too-many-leases') {
      // The server allows one task at a time (max_leases_per_labeler = 1):
      // work without prefetching rather than ask again and again.
      prefetchAllowed = false;
      return;
    }
    // Busy or unreachable: try again later.
  }
  if (!reviewing || current !== owner || next) {
    if (got) await call('POST', `/api/v1/tasks/${got.claim.task.task_id}/release`).catch(() => {});
    return;
  }
  if (!got) {
    prefetchTimer = setTimeout(prefetch, PREFETCH_RETRY_MS);
    return;
  }
  next = new Entry(got.claim, { hidden: true, sentAt: got.sentAt });
  setView('task');
}

// ---- Showing a task ------------------------------------------------------

function present(entry) {
  current = entry;
  entry.players.show();
  resetAnswer();
  renderTask(entry.task);
  renderFilmstrip(entry.players);
  entry.players.onChange(renderTransport);
  entry.players.setRate(Number($('speed').value));
  renderTransport(entry.players);
  showLease(entry.lease.msLeft());
  if (entry.context) renderContext(entry.context);
  else renderContext(null);
  setView('task');
  document.activeElement?.blur?.();
  entry.players.ready().then(() => {
    if (current !== entry) return;
    performance.mark('task-ready');
    if (performance.getEntriesByName('verdict-submit').length) {
      performance.measure('verdict-to-ready', 'verdict-submit', 'task-ready');
      performance.clearMarks('verdict-submit');
    }
    document.dispatchEvent(new CustomEvent('recount:task-ready', { detail: { taskId: entry.task.task_id } }));
  });
  prefetch();
}

const REASONS = {
  'low-confidence': 'Low confidence',
  'small-margin': 'Close call',
  'audit-sample': 'Audit sample',
  'high-value': 'High value',
};

function renderTask(task) {
  // A blind task (audit samples, gold copies, disputes, or every task of a
  // store that asks for it) comes without the model's answer, confidences,
  // quantity and reason: show nothing in their place, so it reads like any
  // other task and nothing anchors the answer.
  $('task-reason').hidden = task.blind;
  $('task-model').hidden = task.blind;
  $('task-reason').textContent = task.blind ? '' : (REASONS[task.reason] ?? task.reason);
  const qty = task.quantity > 1 ? ` ×${task.quantity}` : '';
  $('task-model').textContent = task.blind ? '' : `Model: ${task.kind === 'return' ? 'put back' : 'took'}${qty}`;
  const list = $('candidates');
  list.replaceChildren(
    ...task.candidates.map((c, i) =>
      productItem(c, { index: i < 9 ? i + 1 : null, confidence: c.confidence, onChoose: chooseProduct })),
  );
  $('catalog-search').value = '';
  $('search-results').replaceChildren();
  searchResults = [];
  searchActive = -1;
}

function renderContext(ctx) {
  const cart = $('cart');
  if (!ctx) {
    cart.replaceChildren();
    $('cart-note').textContent = 'Loading…';
    return;
  }
  cart.replaceChildren(
    ...ctx.cart.map((l) =>
      el('li', {}, el('span', { textContent: `${l.quantity} × ${l.name || l.sku}` }),
        el('span', { textContent: formatCents(l.total_cents) }))),
  );
  const notes = [];
  if (ctx.cart.length === 0) notes.push('Nothing settled yet.');
  if (ctx.other_events_in_review > 0) {
    notes.push(`${ctx.other_events_in_review} other event${ctx.other_events_in_review > 1 ? 's' : ''} in review.`);
  }
  const left = current?.task.blind ? 'The shopper has left.' : 'The shopper has left; the receipt waits for this answer.';
  notes.push(ctx.exited ? left : 'The shopper is still in the store.');
  $('cart-note').textContent = notes.join(' ');
}

function renderTransport(players) {
  if (players !== current?.players) return;
  const t = players.time();
  const [lo, hi] = players.range();
  const span = hi - lo || 1;
  $('scrub').value = String(Math.round(((t - lo) / span) * 1000));
  $('event-marker').style.left = `${((0 - lo) / span) * 100}%`;
  const sign = t >= 0 ? '+' : '−';
  $('clock').textContent = `event ${sign}${Math.abs(t).toFixed(3)} s`;
  $('play').textContent = players.paused() ? 'Play' : 'Pause';
  for (const tile of $('filmstrip').children) {
    const from = Number(tile.dataset.t);
    const to = Number(tile.dataset.until);
    tile.classList.toggle('current', t >= from - 1e-3 && t < to);
  }
}

function renderFilmstrip(players) {
  const strip = $('filmstrip');
  const f = players.filmstrip();
  if (!f) {
    strip.replaceChildren();
    return;
  }
  const times = f.timestamps_ms.map((ms) => ms / 1000 - f.offset);
  strip.replaceChildren(
    ...times.map((t, i) => {
      const col = i % f.columns;
      const row = Math.floor(i / f.columns);
      const b = el('button', { type: 'button', title: `Go to ${t >= 0 ? '+' : '−'}${Math.abs(t).toFixed(2)} s` });
      b.setAttribute('aria-label', `Frame at ${t.toFixed(2)} seconds from the event`);
      // Percentages keep the sprite aligned at any tile size.
      b.style.aspectRatio = `${f.tile_width} / ${f.tile_height}`;
      b.style.backgroundImage = `url("${f.url}")`;
      b.style.backgroundSize = `${f.columns * 100}% ${f.rows * 100}%`;
      b.style.backgroundPosition = `${f.columns > 1 ? (col / (f.columns - 1)) * 100 : 0}% ${f.rows > 1 ? (row / (f.rows - 1)) * 100 : 0}%`;
      b.dataset.t = String(t);
      b.dataset.until = String(i + 1 < times.length ? times[i + 1] : Infinity);
      b.addEventListener('click', () => {
        players.pause();
        players.seek(t);
      });
      b.addEventListener('mouseenter', (e) => {
        // Scrub by hovering with the mouse button held.
        if (e.buttons === 1) players.seek(t);
      });
      return b;
    }),
  );
}

// ---- The answer ----------------------------------------------------------

function resetAnswer() {
  answer = { action: null, sku: null };
  $('quantity').value = current?.task.quantity ?? 1;
  $('note').value = '';
  setStatus('');
  renderAnswer();
  setSubmitting(false);
}

function renderAnswer() {
  for (const b of document.querySelectorAll('.actions button')) {
    b.setAttribute('aria-pressed', String(b.dataset.action === answer.action));
  }
  const needsProduct = answer.action !== 'none';
  $('product-fieldset').disabled = !needsProduct;
  for (const b of document.querySelectorAll('.products button.product')) {
    b.setAttribute('aria-pressed', String(needsProduct && b.dataset.sku === answer.sku));
  }
  $('quantity').disabled = !needsProduct;
}

function setAction(action) {
  answer.action = action;
  renderAnswer();
}

function chooseProduct(product) {
  answer.sku = product.sku;
  if (!answer.action || answer.action === 'none') answer.action = current?.task.kind ?? 'pick';
  renderAnswer();
}

function setStatus(text, { error = false } = {}) {
  const s = $('answer-status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

function setSubmitting(on) {
  submitting = on;
  $('submit').disabled = on;
  $('cant-tell').disabled = on;
}

function adjustQuantity(delta) {
  const q = $('quantity');
  q.value = String(Math.min(99, Math.max(1, (Number(q.value) || 1) + delta)));
}

function buildVerdict(cantTell) {
  const note = $('note').value.trim() || undefined;
  if (cantTell) return { cant_tell: true, note };
  if (!answer.action) throw new Error('Choose what happened: took (P), put back (R) or nothing (N).');
  if (answer.action === 'none') return { action: 'none', note };
  if (!answer.sku) throw new Error('Choose the product: 1–9, or search the catalog with /.');
  const quantity = Number($('quantity').value);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 99) throw new Error('Quantity must be a whole number from 1 to 99.');
  return { action: answer.action, sku: answer.sku, quantity, note };
}

async function submit(cantTell = false) {
  if (!current || submitting) return;
  let verdict;
  try {
    verdict = buildVerdict(cantTell);
  } catch (err) {
    setStatus(err.message, { error: true });
    return;
  }
  const entry = current;
  setSubmitting(true);
  setStatus(cantTell ? 'Sending to a supervisor…' : 'Submitting…');
  performance.clearMarks('verdict-submit');
  performance.mark('verdict-submit');
  try {
    // The server accepts the same answer again, so retrying through a
    // dropped connection can never record two verdicts.
    await call('POST', `/api/v1/tasks/${entry.task.task_id}/verdict`, verdict, {
      retries: 6,
      onRetry: (_, n) => setStatus(`Connection trouble; retrying (${n})…`, { error: true }),
    });
  } catch (err) {
    if (current !== entry) return;
    setSubmitting(false);
    if (err instanceof ApiError && (err.code === 'lease-expired' || err.code === 'lease-not-held')) {
      entry.lease.lose(err);
    } else {
      setStatus(`Not saved: ${err.message}`, { error: true });
    }
    return;
  }
  done += 1;
  entry.drop();
  current = null;
  advance();
}

// ---- Losing a lease -------------------------------------------------------

function leaseLost(entry, err) {
  if (entry === next) {
    // The prefetched task went back to the queue: fetch another later.
    next = null;
    entry.players.destroy();
    prefetch();
    return;
  }
  if (entry !== current) return;
  entry.players.destroy();
  current = null;
  if (err.code === 'lease-yielded') {
    // Work a receipt waits for came in: this task is done later, by
    // someone, and the console moves on to the urgent one at once.
    toast('Urgent work came in; this task went back to the queue.');
    advance();
    return;
  }
  $('lost-title').textContent = err.code === 'lease-expired'
    ? 'Your time on this task ran out'
    : 'This task is no longer yours';
  $('lost-message').textContent = err.code === 'lease-expired'
    ? 'The lease expired, so the task went back to the queue for someone else. Nothing you entered was saved for it.'
    : `${err.message}. Nothing you entered was saved for it.`;
  setView('lost');
  $('resume').focus();
}

function fatal(err) {
  reviewing = false;
  if (err instanceof ApiError && err.status === 401) {
    location.href = '/login?next=/console';
    return;
  }
  setView('start');
  toast(`Could not get a task: ${err.message}`, { error: true });
}

// ---- Start, pause, leave ----------------------------------------------------

/**
 * Takes up the tasks this labeler already holds (a reloaded page, another
 * window): the first is shown, the second becomes the prefetched one.
 */
async function adoptHeld() {
  let held;
  try {
    held = await call('GET', '/api/v1/tasks/leased', undefined, { retries: 2 });
  } catch {
    return false;
  }
  const mine = new Set([current, next].filter(Boolean).map((e) => e.task.task_id));
  const others = held.filter((c) => !mine.has(c.task.task_id));
  if (!reviewing || others.length === 0) return false;
  const [first, ...rest] = others;
  for (const extra of rest.slice(prefetchOn && !next ? 1 : 0)) {
    await call('POST', `/api/v1/tasks/${extra.task.task_id}/release`).catch(() => {});
  }
  if (prefetchOn && !next && rest.length) next = new Entry(rest[0], { hidden: true, sentAt: null });
  present(new Entry(first, { hidden: false, sentAt: null }));
  return true;
}

async function start() {
  if (reviewing && current) return;
  reviewing = true;
  lastInput = Date.now();
  $('idle-note').hidden = true;
  if (!(await adoptHeld())) advance();
}

async function pauseReviewing() {
  reviewing = false;
  clearTimeout(emptyTimer);
  clearTimeout(prefetchTimer);
  const held = [current, next].filter(Boolean);
  current = null;
  next = null;
  for (const e of held) {
    e.players.destroy();
    await e.lease.release();
  }
  setView('start');
}

// ---- Idle: give the work back ---------------------------------------------

// A labeler who walks away (no key, pointer or scroll input, or the tab
// hidden) for `idle-release-ms` stops reviewing: the held tasks go back to
// the queue at once instead of being heartbeaten for nobody until their
// receipts run late. Starting again is one key press.
const idleReleaseMs = Number(document.querySelector('meta[name="idle-release-ms"]')?.content ?? 120000);
// A hidden tab gets no input, so the time since the last input covers it.
let lastInput = Date.now();
for (const type of ['keydown', 'pointerdown', 'pointermove', 'wheel', 'input']) {
  addEventListener(type, () => { lastInput = Date.now(); }, { capture: true, passive: true });
}
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) lastInput = Date.now();
});

if (idleReleaseMs > 0) {
  setInterval(() => {
    if (!reviewing || Date.now() - lastInput < idleReleaseMs) return;
    const away = idleReleaseMs < 60000
      ? `${Math.round(idleReleaseMs / 1000)} s`
      : `${Math.round(idleReleaseMs / 60000)} min`;
    pauseReviewing().then(() => {
      $('idle-note').hidden = false;
      toast(`Paused after ${away} without input; your tasks went back to the queue.`);
    });
  }, Math.min(1000, idleReleaseMs));
}

// Closing the tab gives held tasks back at once instead of after the lease.
addEventListener('pagehide', () => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  for (const e of [current, next]) {
    if (!e || e.lease.ended) continue;
    fetch(`/api/v1/tasks/${e.task.task_id}/release`, {
      method: 'POST',
      keepalive: true,
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf },
    });
  }
});

// ---- Catalog search ---------------------------------------------------------

let searchSeq = 0;
async function search(query) {
  const seq = ++searchSeq;
  if (!current || query.trim().length < 2) {
    $('search-results').replaceChildren();
    searchResults = [];
    return;
  }
  try {
    const found = await call('GET',
      `/api/v1/tasks/${current.task.task_id}/products?q=${encodeURIComponent(query)}&limit=8`);
    if (seq !== searchSeq) return;
    searchResults = found;
    searchActive = found.length ? 0 : -1;
    renderSearch();
  } catch (err) {
    if (seq === searchSeq) setStatus(`Search failed: ${err.message}`, { error: true });
  }
}

function renderSearch() {
  const list = $('search-results');
  if (searchResults.length === 0) {
    list.replaceChildren(el('li', { className: 'muted', textContent: 'No product matches.' }));
    return;
  }
  list.replaceChildren(...searchResults.map((p) => productItem(p, { onChoose: (prod) => {
    chooseProduct(prod);
    $('catalog-search').blur();
  } })));
  [...list.querySelectorAll('button')].forEach((b, i) => b.classList.toggle('active', i === searchActive));
  renderAnswer();
}

// ---- Wiring ---------------------------------------------------------------------

function withPlayers(fn) {
  return () => {
    if (current) fn(current.players);
  };
}

function changeSpeed(direction) {
  const s = $('speed');
  s.selectedIndex = Math.min(s.options.length - 1, Math.max(0, s.selectedIndex + direction));
  current?.players.setRate(Number(s.value));
}

let focusBeforeHelp = null;
function toggleHelp(show = $('help').hidden) {
  if (show) focusBeforeHelp = document.activeElement;
  $('help').hidden = !show;
  if (show) {
    $('help-close').focus();
  } else {
    // Hand focus back at once: a hidden button keeping it would take the
    // next Enter for itself instead of the answer.
    $('help-close').blur();
    if (focusBeforeHelp instanceof HTMLElement && focusBeforeHelp !== document.body) focusBeforeHelp.focus();
    focusBeforeHelp = null;
  }
}

function init() {
  $('start').addEventListener('click', start);
  $('resume').addEventListener('click', start);
  $('pause').addEventListener('click', pauseReviewing);
  $('play').addEventListener('click', withPlayers((p) => p.toggle()));
  $('frame-back').addEventListener('click', withPlayers((p) => p.step(-1)));
  $('frame-forward').addEventListener('click', withPlayers((p) => p.step(1)));
  $('jump-event').addEventListener('click', withPlayers((p) => { p.pause(); p.seek(0); }));
  $('speed').addEventListener('change', () => current?.players.setRate(Number($('speed').value)));
  $('scrub').addEventListener('input', withPlayers((p) => {
    const [lo, hi] = p.range();
    p.pause();
    p.seek(lo + (Number($('scrub').value) / 1000) * (hi - lo));
  }));
  for (const b of document.querySelectorAll('.actions button')) {
    b.addEventListener('click', () => setAction(b.dataset.action));
  }
  $('qty-minus').addEventListener('click', () => adjustQuantity(-1));
  $('qty-plus').addEventListener('click', () => adjustQuantity(1));
  $('answer-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submit(false);
  });
  $('cant-tell').addEventListener('click', () => submit(true));
  $('help-button').addEventListener('click', () => toggleHelp());
  $('help-close').addEventListener('click', () => toggleHelp(false));
  const box = $('catalog-search');
  box.addEventListener('input', () => search(box.value));
  box.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (searchResults.length) {
        searchActive = (searchActive + (e.key === 'ArrowDown' ? 1 : -1) + searchResults.length) % searchResults.length;
        renderSearch();
      }
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (searchActive >= 0 && searchResults[searchActive]) {
        chooseProduct(searchResults[searchActive]);
        box.blur();
      }
    }
  });

  const inTask = (fn) => (e) => {
    if ($('console').dataset.state !== 'task' || !$('help').hidden) return false;
    return fn(e);
  };
  const bindings = {
    Space: inTask(withPlayers((p) => p.toggle())),
    k: inTask(withPlayers((p) => p.toggle())),
    ArrowLeft: inTask(withPlayers((p) => p.step(-1))),
    ArrowRight: inTask(withPlayers((p) => p.step(1))),
    'Shift+ArrowLeft': inTask(withPlayers((p) => { p.pause(); p.seek(p.time() - 1); })),
    'Shift+ArrowRight': inTask(withPlayers((p) => { p.pause(); p.seek(p.time() + 1); })),
    e: inTask(withPlayers((p) => { p.pause(); p.seek(0); })),
    '[': inTask(() => changeSpeed(-1)),
    ']': inTask(() => changeSpeed(1)),
    p: inTask(() => setAction('pick')),
    r: inTask(() => setAction('return')),
    n: inTask(() => setAction('none')),
    c: inTask(() => submit(true)),
    m: inTask(() => $('note').focus()),
    '/': inTask(() => $('catalog-search').focus()),
    '+': inTask(() => adjustQuantity(1)),
    '=': inTask(() => adjustQuantity(1)),
    '-': inTask(() => adjustQuantity(-1)),
    '?': () => toggleHelp(),
    Enter: (e) => {
      if (!$('help').hidden) return toggleHelp(false);
      const state = $('console').dataset.state;
      if (state === 'task') {
        // Enter on a focused button presses that button instead.
        if (e.target instanceof HTMLButtonElement && e.target.offsetParent !== null) return false;
        return submit(false);
      }
      if (state === 'start' || state === 'lost' || state === 'idle') return start();
      return false;
    },
    Escape: (e) => {
      if (!$('help').hidden) return toggleHelp(false);
      if (e.target instanceof HTMLElement && e.target !== document.body) e.target.blur();
      return undefined;
    },
  };
  for (let i = 1; i <= 9; i++) {
    bindings[String(i)] = inTask(() => {
      const c = current?.task.candidates[i - 1];
      if (c) chooseProduct(c);
    });
  }
  install(bindings);
  setView('start');
}

init();
