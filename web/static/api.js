// The JSON API as the console uses it: the session cookie authenticates,
// the page's CSRF token goes with every request that changes state, and
// requests that are safe to repeat are retried through network failures.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

/** An answer from the API that is not a success. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Whether an error is worth retrying: the network, or a server that is busy. */
export function transient(err) {
  return !(err instanceof ApiError) || err.status >= 500 || err.status === 429;
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls the API. `retries` repeats transient failures with backoff; use it
 * only for requests whose repetition changes nothing (reads, heartbeats,
 * verdicts, which the server accepts again when the answer is the same).
 * Returns the parsed JSON, or null for 204.
 */
export async function call(method, path, body, { retries = 0, onRetry } = {}) {
  let delay = 250;
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(method, path, body);
    } catch (err) {
      if (attempt >= retries || !transient(err)) throw err;
      onRetry?.(err, attempt + 1);
      await wait(delay);
      delay = Math.min(delay * 2, 4000);
    }
  }
}

async function once(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // A proxy's HTML error page: report the status alone.
  }
  if (!response.ok) {
    const e = data?.error ?? {};
    throw new ApiError(response.status, e.code ?? 'http-' + response.status, e.message ?? response.statusText);
  }
  return data;
}
