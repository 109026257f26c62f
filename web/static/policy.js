// Saves a store's routing policy through the API; "use recommended" fills the
// threshold in, so the change is still reviewed before it is saved.

import { call } from './api.js';

const form = document.getElementById('policy-form');
const status = document.getElementById('policy-status');
const useRecommended = document.getElementById('use-recommended');

function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle('error', error);
}

useRecommended?.addEventListener('click', () => {
  const input = document.getElementById('threshold');
  input.value = useRecommended.dataset.threshold;
  input.focus();
  say('Threshold set to ' + input.value + '. Save to apply it.');
});

form?.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!document.getElementById('save-policy')) return;
  const number = (id) => Number(document.getElementById(id).value);
  const highValue = document.getElementById('high_value_cents').value.trim();
  const reviewCost = document.getElementById('review_cost_cents').value.trim();
  const patch = {
    threshold: number('threshold'),
    margin: number('margin'),
    audit_rate: number('audit_rate'),
    audit_verdicts: number('audit_verdicts'),
    high_value_cents: highValue === '' ? null : Number(highValue),
    receipt_sla_ms: number('receipt_sla_ms'),
    mode: document.getElementById('mode').value,
    review_cost_cents: reviewCost === '' ? null : Number(reviewCost),
  };
  try {
    const saved = await call('PUT', '/api/v1/stores/' + encodeURIComponent(form.dataset.storeId) + '/policy', patch);
    const rule = saved.mode === 'charge-aware'
      ? 'charge-aware routing' + (saved.review_cost_cents == null ? '' : ' at ' + saved.review_cost_cents + ' cents a review')
      : 'threshold ' + saved.threshold.toFixed(2);
    say('Saved: ' + rule + '. New events follow it now.');
  } catch (err) {
    say('Not saved: ' + err.message, true);
  }
});
