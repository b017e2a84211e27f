// Follow one run over SSE. EventSource reconnects by itself after a network drop and
// sends Last-Event-ID, from which rdev resumes exactly; if the browser gives up (the
// server answered with an error while restarting) a fresh connection replays the run
// and the log view drops the lines it already shows.

const RETRY_MS = [500, 1000, 2000, 4000];

export class RunStream {
  constructor(project, commandId, handlers) {
    this.url = `/projects/${encodeURIComponent(project)}/events?stream_id=${encodeURIComponent(commandId)}`;
    this.handlers = handlers;
    this.source = null;
    this.done = false;
    this.failures = 0;
    this.timer = 0;
  }

  open() {
    if (this.done) return;
    const source = new EventSource(this.url);
    this.source = source;
    source.addEventListener('open', () => this.handlers.connection?.('live'));
    source.addEventListener('connected', (e) => {
      this.failures = 0;
      this.handlers.connected?.(JSON.parse(e.data));
    });
    source.addEventListener('queued', (e) => this.handlers.queued?.(JSON.parse(e.data)));
    source.addEventListener('output', (e) => this.handlers.output?.(JSON.parse(e.data), e.lastEventId));
    source.addEventListener('complete', (e) => {
      this.finish();
      this.handlers.complete?.(JSON.parse(e.data));
    });
    source.addEventListener('error', (e) => this.onError(source, e));
  }

  onError(source, e) {
    if (e.data) {
      // An `error` event sent by rdev; a `complete` always follows it.
      this.handlers.failure?.(JSON.parse(e.data));
      return;
    }
    if (this.done) return;
    if (source.readyState === EventSource.CONNECTING) {
      this.handlers.connection?.('reconnecting');
      return;
    }
    // CLOSED: the server refused the stream and the browser will not retry on its own.
    source.close();
    this.handlers.connection?.('reconnecting');
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.timer = setTimeout(() => this.retry(), delay);
  }

  // Retry unless the refusal was final (the session ended, the run is gone).
  async retry() {
    if (this.done) return;
    const verdict = await this.handlers.probe?.();
    if (verdict === 'stop') this.finish();
    else this.open();
  }

  finish() {
    this.done = true;
    clearTimeout(this.timer);
    this.source?.close();
  }
}
