// The dashboard keeps itself current: every few seconds it fetches the
// server-rendered body (numbers and charts) and swaps it in. It pauses while
// the tab is hidden, says when the numbers are stale, and stops when the
// session has ended instead of showing old figures as if they were live.

const body = document.getElementById('dashboard-body');
const status = document.getElementById('live-status');
const every = Number(document.querySelector('meta[name="refresh-ms"]')?.content) || 5000;
let timer = null;
let failures = 0;

function show(text, live) {
  status.textContent = text;
  status.classList.toggle('live', live);
  status.classList.toggle('stale', !live);
}

async function refresh() {
  timer = null;
  try {
    const response = await fetch('/dashboard/live', { credentials: 'same-origin', cache: 'no-store' });
    if (response.status === 401 || response.status === 403) {
      show('Signed out: sign in again to see live numbers', false);
      return; // no more polling: the numbers on screen are marked stale
    }
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const html = await response.text();
    // Keep the reader's place: swapping the body must not scroll the page.
    const y = window.scrollY;
    body.innerHTML = html;
    window.scrollTo(0, y);
    failures = 0;
    show('Live', true);
    body.dispatchEvent(new CustomEvent('dashboard:updated'));
  } catch {
    failures += 1;
    show('Not updated for ' + Math.round((failures * every) / 1000) + ' s: retrying', false);
  }
  schedule();
}

function schedule() {
  if (timer === null && !document.hidden) timer = setTimeout(refresh, every);
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else {
    refresh();
  }
});

schedule();
