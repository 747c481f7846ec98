// Live job events: GET /v1/events (Server-Sent Events), read through fetch
// so that the token travels as a header (EventSource cannot send one).
//
// The server pushes each change once it is durable; the dashboard never
// polls. Pages that show many jobs ask for a coalesced stream (`coalesce`:
// one "changes" summary a second at most, so a burst of jobs costs the
// server no event per job); one job's page follows that job's events.
// Events arrive in batches (all those of one network read). A stream that
// drops is opened again after a pause that grows from 1 to 30 seconds.

import { authorization, refused, ApiError } from './api.js';

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Follows the events `parameters` select (`ids`, `queue`, `results`,
// `coalesce`): onEvents(array) for each batch — job events ({id, state, ...})
// or summaries ({changes, highest_id}) — onStatus('live' | 'reconnecting' |
// 'stopped') as the stream comes and goes. Returns a function that stops following.
export function follow(parameters, { onEvents, onStatus = () => {} }) {
  const controller = new AbortController();
  const search = new URLSearchParams(parameters).toString();
  const url = `/v1/events${search ? `?${search}` : ''}`;

  async function readStream(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const batch = [];
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = parse(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) batch.push(event);
      }
      if (batch.length) onEvents(batch);
    }
  }

  async function run() {
    let pause = 1000;
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(url, {
          headers: authorization(),
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (response.status === 401) {
          refused(new ApiError(401, 'unauthorized', 'the server refused the token'));
          return;
        }
        if (response.status >= 400 && response.status < 500) {
          // A request the server will never take (a bad filter): no retry.
          onStatus('stopped');
          return;
        }
        if (response.ok) {
          onStatus('live');
          pause = 1000;
          await readStream(response);
        }
      } catch {
        // Dropped, or stopped: decided below.
      }
      if (controller.signal.aborted) return;
      onStatus('reconnecting');
      await sleep(pause, controller.signal);
      pause = Math.min(pause * 2, 30000);
    }
  }

  run();
  return () => controller.abort();
}

// One event block ("event: job\ndata: {...}", "event: changes\ndata: {...}");
// null for a comment (": keep-alive") or an event of another kind.
function parse(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if ((type !== 'job' && type !== 'changes') || data.length === 0) return null;
  try {
    return JSON.parse(data.join('\n'));
  } catch {
    return null;
  }
}

// Follows a coalesced stream (a summary a second at most) of the jobs
// `parameters` select, and asks `refresher` for a new read whenever jobs
// changed — and when the stream comes back after a drop, since what
// changed meanwhile was not counted. Returns the function that stops it.
export function followChanges(parameters, refresher, onStatus) {
  let connections = 0;
  return follow({ ...parameters, coalesce: 1 }, {
    onEvents(batch) {
      if (batch.some((event) => event.changes > 0)) refresher.request();
    },
    onStatus(state) {
      if (state === 'live' && ++connections > 1) refresher.request();
      onStatus(state);
    },
  });
}
