// The workers: each with its queues, labels, free slots, the jobs it runs
// now, and when it was last heard from. Read again when job events say work
// moved (at most about once a second); "last seen" ticks on without asking.

import { get, query } from '../api.js';
import { followChanges } from '../events.js';
import { h, ago, when, plural, refresher } from '../dom.js';

export function mount(main, _parameters, context) {
  const table = h('div', { class: 'table-wrap', id: 'workers' });
  const note = h('p', { class: 'muted small', id: 'workers-note' });
  main.append(h('h1', {}, 'Workers'), note, table);
  const seen = [];  // [cell, last_seen_ms]

  const refresh = refresher(async () => {
    try {
      const all = [];
      let after = '';
      for (let page = 0; page < 10; page += 1) {  // at most 10,000 workers are kept
        const answer = await get(`/v1/workers${query({ after })}`);
        all.push(...answer.workers);
        if (!answer.next_after) break;
        after = answer.next_after;
      }
      draw(all);
    } catch (problem) {
      context.problem(problem);
    }
  });

  function draw(workers) {
    seen.length = 0;
    const running = workers.reduce((sum, worker) => sum + worker.running.length, 0);
    note.textContent = `${plural(workers.length, 'worker')} heard from in the last hour, ` +
      `running ${plural(running, 'job')}.`;
    if (!workers.length) {
      table.replaceChildren(h('p', { class: 'muted' }, 'No worker has called this server yet.'));
      return;
    }
    table.replaceChildren(
      h('table', { class: 'workers' },
        h('thead', {}, h('tr', {}, h('th', {}, 'worker'), h('th', { class: 'num' }, 'free slots'),
          h('th', {}, 'running'), h('th', {}, 'last seen'), h('th', { class: 'wide' }, 'queues'),
          h('th', { class: 'wide' }, 'labels'))),
        h('tbody', {}, workers.map((worker) => {
          // By this browser's clock, which may differ from the server's.
          const at = Date.now() - worker.seconds_since_seen * 1000;
          const last = h('td', { title: when(worker.last_seen_ms) }, ago(at));
          seen.push([last, at]);
          return h('tr', { 'data-worker': worker.id },
            h('td', { class: 'name' }, worker.id),
            h('td', { class: 'num' }, worker.free_slots),
            h('td', { class: 'running' }, worker.running.length
              ? worker.running.map((id) => h('a', { href: `#/jobs/${id}`, class: 'chip' }, id))
              : h('span', { class: 'muted' }, 'idle')),
            last,
            h('td', { class: 'wide' }, worker.queues.length ? worker.queues.join(', ') : 'all'),
            h('td', { class: 'wide small' }, worker.labels.join(', ')));
        }))));
  }

  // Only the text of "last seen" changes here: nothing is asked of the server.
  const clock = setInterval(() => {
    for (const [cell, milliseconds] of seen) cell.textContent = ago(milliseconds);
  }, 1000);
  const stop = followChanges({}, refresh, context.status);
  refresh.now();
  return () => {
    stop();
    refresh.stop();
    clearInterval(clock);
  };
}
