// Every camera of a task on one timeline. Time 0 is the event instant;
// clip i shows time t at its own position `offset_i + t`, so one play,
// pause, seek, speed or frame step drives all cameras at once. The first
// playable clip with the longest reach is the leader the others follow.

import { el } from './product.js';

const DEFAULT_FPS = 30;
// Drift a follower may have before it is put back in step while playing.
const MAX_DRIFT_S = 0.08;

export class Players {
  /**
   * @param {object} task the task from a claim
   * @param {HTMLElement} host where the players go
   * @param {{hidden?: boolean}} opts hidden: load without showing (prefetch)
   */
  constructor(task, host, { hidden = false } = {}) {
    this.task = task;
    this.listeners = new Set();
    this.root = el('div', { className: 'players' });
    this.root.hidden = hidden;
    this.root.dataset.taskId = task.task_id;
    this.clips = [];
    for (const clip of task.clips) {
      const figure = el('figure', { className: 'player' });
      figure.dataset.camera = clip.camera_id;
      const caption = el('figcaption', { textContent: clip.camera_id });
      if (clip.status === 'ready' && clip.video_url) {
        const video = el('video', {
          muted: true,
          playsInline: true,
          preload: 'auto',
          src: clip.video_url,
        });
        video.defaultMuted = true;
        if (clip.poster_url) video.poster = clip.poster_url;
        video.setAttribute('aria-label', `Camera ${clip.camera_id}`);
        figure.append(video, caption);
        this.clips.push({
          clip,
          video,
          figure,
          offset: (clip.event_offset_ms ?? 0) / 1000,
          duration: (clip.duration_ms ?? 0) / 1000,
          fps: clip.frame_rate || DEFAULT_FPS,
        });
        video.addEventListener('loadedmetadata', () => {
          const c = this.clips.find((x) => x.video === video);
          if (c && Number.isFinite(video.duration)) c.duration = video.duration;
          this.emit();
        });
        video.addEventListener('ended', () => {
          if (this.leader?.video === video) this.pause();
        });
      } else {
        const reason = clip.error?.message ?? 'This camera has no video for the event.';
        const code = clip.error?.code ?? clip.status;
        const box = el('div', { className: 'unavailable' },
          el('div', {}, el('strong', { textContent: 'Video unavailable' }), `${reason} (${code})`));
        figure.classList.add('failed');
        figure.append(box, caption);
      }
      this.root.append(figure);
    }
    if (task.clips.length === 0) {
      this.root.append(el('div', { className: 'player' },
        el('div', { className: 'unavailable', textContent: 'No camera recorded this event.' })));
    }
    this.leader = this.clips.reduce((best, c) => (!best || c.duration - c.offset > best.duration - best.offset ? c : best), null);
    if (this.leader) {
      this.leader.video.addEventListener('timeupdate', () => {
        if (!this.leader.video.paused) this.follow();
        this.emit();
      });
      this.leader.video.addEventListener('seeked', () => this.emit());
      this.leader.video.addEventListener('play', () => this.emit());
      this.leader.video.addEventListener('pause', () => this.emit());
    }
    host.append(this.root);
    // Open at the event instant: the poster shows it, and a labeler who
    // plays from here sees what happened next.
    this.seek(0);
  }

  /** Calls `fn` whenever the position or play state changes. */
  onChange(fn) {
    this.listeners.add(fn);
  }

  emit() {
    for (const fn of this.listeners) fn(this);
  }

  show() {
    this.root.hidden = false;
  }

  /** Earliest and latest time (relative to the event) any camera covers. */
  range() {
    if (this.clips.length === 0) return [0, 0];
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of this.clips) {
      lo = Math.min(lo, -c.offset);
      hi = Math.max(hi, c.duration - c.offset);
    }
    return [lo, Math.max(hi, lo)];
  }

  /** Current time relative to the event. */
  time() {
    return this.leader ? this.leader.video.currentTime - this.leader.offset : 0;
  }

  paused() {
    return !this.leader || this.leader.video.paused;
  }

  frameSeconds() {
    return 1 / (this.leader?.fps ?? DEFAULT_FPS);
  }

  /** Puts every camera at `t` seconds from the event. */
  seek(t) {
    const [lo, hi] = this.range();
    const target = Math.min(Math.max(t, lo), hi);
    for (const c of this.clips) {
      const pos = Math.min(Math.max(c.offset + target, 0), c.duration || Infinity);
      if (Math.abs(c.video.currentTime - pos) > 1e-4) c.video.currentTime = pos;
      c.figure.classList.toggle('at-event', Math.abs(target) < c.fps ** -1 / 2);
    }
    this.emit();
  }

  /** Keeps the followers within MAX_DRIFT_S of the leader while playing. */
  follow() {
    const t = this.time();
    for (const c of this.clips) {
      if (c === this.leader) continue;
      const pos = c.offset + t;
      const inside = pos >= 0 && pos <= c.duration;
      if (!inside) {
        if (!c.video.paused) c.video.pause();
        continue;
      }
      if (Math.abs(c.video.currentTime - pos) > MAX_DRIFT_S) c.video.currentTime = pos;
      if (c.video.paused && !this.leader.video.paused) c.video.play().catch(() => {});
    }
  }

  async play() {
    if (!this.leader) return;
    const [, hi] = this.range();
    if (this.time() >= hi - 1e-3) this.seek(this.range()[0]);
    this.follow();
    await Promise.all(this.clips.map((c) => c.video.play().catch(() => {})));
  }

  pause() {
    for (const c of this.clips) c.video.pause();
    // Line the followers up on the leader's frame.
    this.seek(this.time());
  }

  toggle() {
    return this.paused() ? this.play() : this.pause();
  }

  /** One frame back (-1) or forward (+1), paused. */
  step(direction) {
    if (!this.leader) return;
    for (const c of this.clips) c.video.pause();
    const fps = this.leader.fps;
    const frame = Math.round(this.leader.video.currentTime * fps) + direction;
    // A hair past the frame's start, so rounding never shows its neighbour.
    const pos = Math.max(0, (frame + 0.1) / fps);
    this.seek(pos - this.leader.offset);
  }

  setRate(rate) {
    for (const c of this.clips) c.video.playbackRate = rate;
  }

  /** Resolves when every playable camera can play (or none can). */
  ready() {
    return Promise.all(this.clips.map((c) => new Promise((resolve) => {
      const v = c.video;
      if (v.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA || v.error) return resolve();
      const done = () => {
        v.removeEventListener('canplay', done);
        v.removeEventListener('error', done);
        resolve();
      };
      v.addEventListener('canplay', done);
      v.addEventListener('error', done);
    })));
  }

  /** The leader's filmstrip, when it has one. */
  filmstrip() {
    const c = this.leader;
    if (!c?.clip.filmstrip || !c.clip.filmstrip_url) return null;
    return { ...c.clip.filmstrip, url: c.clip.filmstrip_url, offset: c.offset };
  }

  /** Stops loading and removes the players. */
  destroy() {
    this.listeners.clear();
    for (const c of this.clips) {
      c.video.pause();
      c.video.removeAttribute('src');
      c.video.load();
    }
    this.root.remove();
  }
}
