// The overview: jobs by state, what ended in each minute of the last hour
// (throughput and failures), and the queues with their limits and actions. Redrawn
// when the (coalesced) event stream says jobs changed: at most once a second.

import { call, get, post, query } from '../api.js';
import { followChanges } from '../events.js';
import { h, svg, STATES, count, plural, bytes, refresher } from '../dom.js';

export function mount(main, _parameters, context) {
  const cards = h('div', { class: 'cards', id: 'state-cards' });
  const facts = h('p', { class: 'muted small', id: 'facts' });
  const chart = h('div', { class: 'chart', id: 'last-hour' });
  const summary = h('p', { class: 'small', id: 'last-hour-summary' });
  const queues = h('div', { class: 'table-wrap', id: 'queues' });
  const note = h('p', { class: 'small', id: 'queue-note', role: 'status' });
  main.append(
    h('h1', {}, 'Overview'),
    cards,
    facts,
    h('section', { class: 'panel' }, h('h2', {}, 'Last hour'), summary, chart),
    h('section', { class: 'panel' }, h('h2', {}, 'Queues'), note, queues),
  );

  // While a queue action waits for its confirmation or runs, the queues'
  // table stays as it is (a redraw would lose the button's state).
  let busy = false;
  let armed = false;
  const refresh = refresher(async () => {
    try {
      const [stats, listed] = await Promise.all([get('/v1/stats'), get('/v1/queues')]);
      drawCards(cards, facts, stats);
      drawChart(chart, summary, stats.last_hour);
      if (!busy && !armed) drawQueues(queues, listed.queues, act, pause);
    } catch (problem) {
      context.problem(problem);
    }
  });

  // Pause a queue (its running jobs go on, nothing new starts) or resume it.
  async function pause(queue, paused) {
    busy = true;
    try {
      await call('PATCH', `/v1/queues/${encodeURIComponent(queue)}`, { paused });
      note.textContent = `${paused ? 'Paused' : 'Resumed'} ${queue}.`;
    } catch (problem) {
      context.problem(problem);
    } finally {
      busy = false;
      refresh.request();  // no job changed: no event will ask for it
    }
  }

  // Cancel the unfinished jobs of a queue, or retry its failed ones: a page
  // of ids at a time through the public API, newest first, bounded.
  async function act(queue, action, button) {
    if (button.dataset.armed !== 'yes') {
      button.dataset.armed = 'yes';
      button.textContent = action === 'cancel' ? 'Click again to cancel' : 'Click again to retry';
      armed = true;
      setTimeout(() => {
        button.dataset.armed = '';
        button.textContent = button.dataset.label;
        armed = false;
        refresh.request();
      }, 4000);
      return;
    }
    button.dataset.armed = '';
    busy = true;
    let done = 0;
    const states = action === 'cancel' ? ['waiting', 'queued', 'running'] : ['failed'];
    try {
      for (const state of states) {
        let before = '';
        for (let round = 0; round < 100; round += 1) {
          const page = await get(`/v1/jobs${query({ queue, state, before, limit: 1000 })}`);
          const ids = page.jobs.map((item) => item.id);
          if (ids.length) {
            const answer = await post(`/v1/${action}`, { ids });
            done += answer.results.filter((result) => result.cancelled || result.retried).length;
            note.textContent = `${action === 'cancel' ? 'Cancelled' : 'Retried'} ${plural(done, 'job')} of ${queue}…`;
          }
          if (!page.next_before) break;
          before = page.next_before;
        }
      }
      note.textContent = `${action === 'cancel' ? 'Cancelled' : 'Retried'} ${plural(done, 'job')} of ${queue}.`;
    } catch (problem) {
      context.problem(problem);
    } finally {
      busy = false;
      refresh.request();
    }
  }

  const stop = followChanges({}, refresh, context.status);
  refresh.now();
  return () => {
    stop();
    refresh.stop();
  };
}

function drawCards(cards, facts, stats) {
  cards.replaceChildren(
    ...STATES.map((state) =>
      h(
        'a',
        { class: `card state-${state}`, href: `#/jobs?state=${state}`, 'data-state': state },
        h('span', { class: 'card-count' }, count(stats.jobs[state])),
        h('span', { class: 'card-label' }, state),
      ),
    ),
  );
  facts.textContent =
    `${plural(stats.total, 'job')} kept · ${count(stats.jobs_in_memory)} in memory · ` +
    `${plural(stats.stale_completions, 'stale completion')} · ` +
    `${plural(stats.event_streams, 'event stream')} · database ${bytes(stats.store.bytes)}`;
}

function drawChart(chart, summary, hour) {
  const succeeded = hour.succeeded;
  const failed = hour.failed;
  const ended = succeeded.map((value, i) => value + failed[i]);
  const peak = Math.max(1, ...ended);
  const total = ended.reduce((a, b) => a + b, 0);
  const failures = failed.reduce((a, b) => a + b, 0);
  const submitted = hour.submitted.reduce((a, b) => a + b, 0);
  summary.textContent =
    `${plural(total, 'job')} ended (${count(Math.max(...ended))} in the busiest minute), ` +
    `${count(failures)} failed` +
    (total ? ` (${((100 * failures) / total).toFixed(1)} %)` : '') +
    `, ${count(submitted)} submitted.`;

  const width = 600;
  const height = 120;
  const bar = width / ended.length;
  const picture = svg('svg', {
    viewBox: `0 0 ${width} ${height + 16}`,
    role: 'img',
    'aria-label': 'Jobs ended per minute over the last hour: succeeded and failed',
  });
  picture.append(svg('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis' }));
  ended.forEach((_, i) => {
    const ok = (succeeded[i] / peak) * height;
    const bad = (failed[i] / peak) * height;
    const x = i * bar + 1;
    const title = svg('title');
    title.textContent = `${60 - i} min ago: ${succeeded[i]} succeeded, ${failed[i]} failed`;
    const group = svg('g', {}, title);
    if (ok > 0) group.append(svg('rect', { x, y: height - ok, width: bar - 2, height: ok, class: 'ok' }));
    if (bad > 0)
      group.append(svg('rect', { x, y: height - ok - bad, width: bar - 2, height: bad, class: 'bad' }));
    picture.append(group);
  });
  for (const [label, x, anchor] of [
    ['60 min ago', 0, 'start'],
    ['30', width / 2, 'middle'],
    ['now', width, 'end'],
  ]) {
    const text = svg('text', { x, y: height + 13, 'text-anchor': anchor, class: 'tick' });
    text.textContent = label;
    picture.append(text);
  }
  chart.replaceChildren(
    picture,
    h(
      'p',
      { class: 'legend small' },
      h('span', { class: 'swatch ok' }),
      ' succeeded ',
      h('span', { class: 'swatch bad' }),
      ' failed · per minute, peak ',
      count(peak),
    ),
  );
}

// "paused · 10 running at most · 50/s (burst 100) · 2 per key", or "none".
function limitsOf(queue) {
  const limits = [];
  if (queue.paused) limits.push('paused');
  if (queue.max_running !== null) limits.push(`${queue.max_running} running at most`);
  if (queue.rate !== null) limits.push(queue.burst ? `${queue.rate} (burst ${queue.burst})` : queue.rate);
  if (queue.concurrency_limit !== 1) limits.push(`${queue.concurrency_limit} per key`);
  return limits.length ? limits.join(' · ') : 'none';
}

function drawQueues(wrap, queues, act, pause) {
  if (!queues.length) {
    wrap.replaceChildren(h('p', { class: 'muted' }, 'No jobs yet.'));
    return;
  }
  const action = (queue, kind, label, enabled) =>
    h(
      'button',
      {
        type: 'button',
        class: 'small-button',
        disabled: !enabled,
        'data-label': label,
        'data-action': kind,
        onclick: (event) => act(queue, kind, event.currentTarget),
      },
      label,
    );
  wrap.replaceChildren(
    h(
      'table',
      { class: 'queues' },
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, 'queue'), STATES.map((state) => h('th', { class: 'num' }, state)),
          h('th', { class: 'num' }, 'total'), h('th', {}, 'limits'), h('th', {}, '')),
      ),
      h(
        'tbody',
        {},
        queues.map((queue) =>
          h(
            'tr',
            { 'data-queue': queue.name },
            h('td', {}, h('a', { href: `#/jobs?queue=${encodeURIComponent(queue.name)}` }, queue.name)),
            STATES.map((state) =>
              h(
                'td',
                { class: 'num' },
                queue.jobs[state]
                  ? h('a', { href: `#/jobs?queue=${encodeURIComponent(queue.name)}&state=${state}` },
                      count(queue.jobs[state]))
                  : '0',
              ),
            ),
            h('td', { class: 'num' }, count(queue.total)),
            h('td', { class: 'limits' }, limitsOf(queue)),
            h(
              'td',
              { class: 'actions' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'small-button',
                  'data-action': queue.paused ? 'resume' : 'pause',
                  onclick: () => pause(queue.name, !queue.paused),
                },
                queue.paused ? 'Resume' : 'Pause',
              ),
              action(queue.name, 'retry', 'Retry failed', queue.jobs.failed > 0),
              action(queue.name, 'cancel', 'Cancel unfinished',
                queue.jobs.waiting + queue.jobs.queued + queue.jobs.running > 0),
            ),
          ),
        ),
      ),
    ),
  );
}
