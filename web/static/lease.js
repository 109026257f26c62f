// A task's lease: renewed by heartbeats while the page holds the task, and
// a countdown the labeler can see. When the server says the lease is gone
// (it expired, the task was taken back, or an audit gave way to receipt
// work), `onLost` is told once.

import { call, ApiError } from './api.js';

export class Lease {
  /**
   * The countdown runs on this browser's clock: a lease granted by a
   * request sent at local time T lasts at least until T + ttl, whatever the
   * skew between the two clocks.
   *
   * @param {string} taskId
   * @param {{sentAt:?number, ttlMs:number, heartbeatMs?:number, onLost:(err:ApiError)=>void, onTick?:(msLeft:number)=>void}} opts
   *   sentAt: local time the claim was sent; null for a lease taken over from
   *   elsewhere, which is renewed at once to learn its end.
   *   heartbeatMs: how often the server asked to be told (the claim's
   *   `heartbeat_ms`); by default a third of the lease, so two heartbeats can
   *   fail before it ends.
   */
  constructor(taskId, { sentAt, ttlMs, heartbeatMs, onLost, onTick }) {
    this.taskId = taskId;
    this.ttlMs = ttlMs;
    this.expiresAt = sentAt == null ? Date.now() : sentAt + ttlMs;
    this.onLost = onLost;
    this.onTick = onTick;
    this.lost = false;
    this.ended = false;
    this.every(heartbeatMs ?? Math.max(1000, ttlMs / 3));
    this.tick = setInterval(() => this.report(), 250);
    if (sentAt == null) this.heartbeat();
    this.report();
  }

  /** Heartbeats every `ms` from now on. */
  every(ms) {
    if (ms === this.beatMs) return;
    clearInterval(this.beat);
    this.beatMs = ms;
    this.beat = setInterval(() => this.heartbeat(), ms);
  }

  msLeft() {
    return Math.max(0, this.expiresAt - Date.now());
  }

  report() {
    if (this.ended) return;
    this.onTick?.(this.msLeft());
    if (this.msLeft() === 0 && !this.lost) {
      // Our clock says it is over; ask the server, which decides.
      this.heartbeat();
    }
  }

  async heartbeat() {
    if (this.ended || this.inFlight) return;
    this.inFlight = true;
    const sent = Date.now();
    try {
      const renewed = await call('POST', `/api/v1/tasks/${this.taskId}/heartbeat`, undefined, { retries: 2 });
      this.expiresAt = sent + this.ttlMs;
      if (!this.ended && renewed?.heartbeat_ms > 0) this.every(renewed.heartbeat_ms);
    } catch (err) {
      if (err instanceof ApiError && err.status < 500 && err.status !== 429) this.lose(err);
      // Network trouble: the next beat tries again; the countdown shows the risk.
    } finally {
      this.inFlight = false;
    }
  }

  lose(err) {
    if (this.lost || this.ended) return;
    this.lost = true;
    this.stop();
    this.onLost(err);
  }

  /** Stops renewing (after a verdict, a release, or the page moving on). */
  stop() {
    this.ended = true;
    clearInterval(this.beat);
    clearInterval(this.tick);
  }

  /** Gives the task back to the queue. */
  async release() {
    this.stop();
    try {
      await call('POST', `/api/v1/tasks/${this.taskId}/release`);
    } catch {
      // Already gone: nothing to give back.
    }
  }
}
