// Gold tasks and the labelers' gold accuracy: lists from the API, a form to
// make a resolved task gold, and a button to retire one.

import { call } from './api.js';

const goldBody = document.querySelector('#gold-table tbody');
const qualityBody = document.querySelector('#quality-table tbody');
const markForm = document.getElementById('mark-gold');
const markStatus = document.getElementById('mark-status');

const pct = (v) => (v == null ? '–' : (v * 100).toFixed(1) + ' %');
const cell = (text, tag = 'td') => {
  const c = document.createElement(tag);
  c.textContent = text;
  return c;
};

/** A table row saying the list is empty. */
function emptyRow(body, columns, text) {
  const row = document.createElement('tr');
  const c = cell(text);
  c.colSpan = columns;
  c.className = 'muted';
  row.append(c);
  body.append(row);
}

function answerText({ label }) {
  if (label.action === 'none') return 'nothing happened';
  return `${label.action === 'pick' ? 'took' : 'put back'} ${label.quantity} × ${label.sku}`;
}

async function loadGold() {
  const gold = await call('GET', '/api/v1/gold');
  goldBody.replaceChildren();
  for (const g of gold) {
    const row = document.createElement('tr');
    row.id = 'gold-' + g.gold_id;
    if (!g.active) row.className = 'retired';
    const retire = document.createElement('td');
    if (g.active) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'ghost';
      b.textContent = 'Retire';
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          await call('DELETE', '/api/v1/gold/' + encodeURIComponent(g.gold_id));
          await loadGold();
        } catch (err) {
          b.disabled = false;
          markStatus.textContent = 'Not retired: ' + err.message;
        }
      });
      retire.append(b);
    } else {
      retire.textContent = 'retired';
    }
    row.append(
      cell(g.task_id, 'th'),
      cell(g.store_id),
      cell(answerText(g)),
      cell(String(g.answers)),
      cell(pct(g.accuracy)),
      cell(new Date(g.created_at).toLocaleString()),
      retire,
    );
    goldBody.append(row);
  }
  if (!gold.length) {
    emptyRow(goldBody, 7, 'No gold tasks yet. Resolve an escalation with "Also use it as a gold task", or add a resolved task by id.');
  }
}

async function loadQuality() {
  const { labelers } = await call('GET', '/api/v1/labelers/quality');
  qualityBody.replaceChildren();
  for (const l of labelers) {
    const row = document.createElement('tr');
    if (l.flagged) row.className = 'bad flagged';
    const interval = l.accuracy_low == null ? '–' : `${pct(l.accuracy_low)} – ${pct(l.accuracy_high)}`;
    row.append(
      cell(l.username, 'th'),
      cell(String(l.answers)),
      cell(String(l.correct)),
      cell(pct(l.accuracy)),
      cell(interval),
      cell(l.flagged ? 'flagged' : 'ok'),
    );
    qualityBody.append(row);
  }
  if (!labelers.length) emptyRow(qualityBody, 6, 'No gold answers in the last 7 days.');
}

markForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('gold-task-id');
  const id = input.value.trim();
  if (!id) return;
  try {
    await call('POST', '/api/v1/gold', { task_id: id });
    markStatus.textContent = 'Added.';
    input.value = '';
    await loadGold();
  } catch (err) {
    markStatus.textContent = 'Not added: ' + err.message;
  }
});

Promise.all([loadGold(), loadQuality()]).catch((err) => {
  markStatus.textContent = 'Could not load: ' + err.message;
});
