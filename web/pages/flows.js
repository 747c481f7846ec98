// The flows (jobs submitted together, some waiting on others): newest
// first, a page at a time (the API's cursor); and one flow with its jobs,
// what each waits on, and the actions cancel and retry for the whole flow.
// Live: the list reads again when the (coalesced) event stream says jobs
// changed; one flow follows its own jobs' changes.

import { get, post, query } from '../api.js';
import { followChanges } from '../events.js';
import { h, STATES, badge, ago, when, plural, refresher } from '../dom.js';

// The counts of a flow's jobs by state, as small badges: "3 succeeded 1 running".
function tally(counts) {
  const shown = STATES.filter((state) => counts[state] > 0);
  if (!shown.length) return h('span', { class: 'muted' }, 'no jobs kept');
  return h('span', { class: 'tally' },
    shown.map((state) => [h('span', { class: 'num' }, counts[state]), ' ', badge(state), ' ']));
}

export function mount(main, parameters, context) {
  return parameters.id ? mountOne(main, parameters.id, context) : mountList(main, parameters, context);
}

function mountList(main, parameters, context) {
  const before = /^[1-9][0-9]*$/.test(parameters.before ?? '') ? parameters.before : '';
  const table = h('div', { class: 'table-wrap', id: 'flows' });
  const pager = h('p', { class: 'pager' });
  main.append(h('h1', {}, before ? `Flows before ${before}` : 'Flows'), table, pager);

  const refresh = refresher(async () => {
    try {
      draw(await get(`/v1/flows${query({ before, limit: 50 })}`));
    } catch (problem) {
      context.problem(problem);
    }
  });

  function draw(page) {
    if (!page.flows.length) {
      table.replaceChildren(h('p', { class: 'muted', id: 'no-flows' },
        'No flows. A flow is a batch of jobs some of which wait on others (after).'));
    } else {
      table.replaceChildren(h('table', {},
        h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'id'), h('th', {}, 'name'),
          h('th', {}, 'state'), h('th', {}, 'jobs'), h('th', { class: 'wide' }, 'created'))),
        h('tbody', {}, page.flows.map((flow) => {
          const link = `#/flows/${flow.id}`;
          return h('tr', { 'data-flow': flow.id },
            h('td', { class: 'num' }, h('a', { href: link }, flow.id)),
            h('td', { class: 'name' }, h('a', { href: link }, flow.name || `flow ${flow.id}`)),
            h('td', {}, badge(flow.state)),
            h('td', {}, tally(flow.counts)),
            h('td', { class: 'wide', title: when(flow.created_ms) }, ago(flow.created_ms)));
        }))));
    }
    const links = [
      before && h('a', { href: '#/flows' }, '« Newest'),
      page.next_before && page.flows.length === 50 &&
        h('a', { href: `#/flows${query({ before: page.next_before })}`, id: 'older' }, 'Older »'),
    ];
    pager.replaceChildren(...links.filter(Boolean));
  }

  const stop = followChanges({}, refresh, context.status);
  refresh.now();
  return () => {
    stop();
    refresh.stop();
  };
}

function mountOne(main, id, context) {
  const header = h('div', { class: 'job-header' });
  const actions = h('div', { class: 'actions', id: 'flow-actions' });
  const note = h('p', { class: 'small', id: 'action-note', role: 'status' });
  const details = h('dl', { class: 'details', id: 'flow-details' });
  const table = h('div', { class: 'table-wrap', id: 'flow-jobs' });
  main.append(h('p', { class: 'small' }, h('a', { href: '#/flows' }, '« Flows')),
    header, actions, note, details, table);

  const refresh = refresher(async () => {
    try {
      const flow = await get(`/v1/flows/${id}`);
      // What a job waits on is in its spec: read for the jobs that still
      // wait (at most once a second, like the flow).
      draw(flow, await dependencies(flow));
    } catch (problem) {
      if (problem.status === 404) {
        header.replaceChildren(h('h1', {}, `Flow ${id}`));
        details.replaceChildren(h('p', { class: 'error' }, `There is no flow ${id}.`));
      } else {
        context.problem(problem);
      }
    }
  }, 250);

  // id -> the ids it waits on (refs resolved by the server), for the
  // flow's waiting jobs (at most 200 read).
  async function dependencies(flow) {
    const waiting = flow.jobs.filter((job) => job.state === 'waiting').slice(0, 200);
    const read = await Promise.all(waiting.map((job) => get(`/v1/jobs/${job.id}`).catch(() => null)));
    return new Map(read.filter((job) => job?.spec.after).map((job) => [job.id, job.spec.after]));
  }

  async function act(action) {
    note.textContent = '';
    try {
      const answer = await post(`/v1/flows/${id}/${action}`);
      const done = answer.results.filter((result) => result.cancelled || result.retried).length;
      note.textContent = action === 'cancel'
        ? `${plural(done, 'job')} cancelled.` : `${plural(done, 'job')} queued again.`;
    } catch (problem) {
      context.problem(problem);
    }
    refresh.request();
  }

  function draw(flow, after) {
    header.replaceChildren(
      h('h1', {}, `Flow ${flow.id}`, flow.name ? ` · ${flow.name}` : ''),
      h('span', { id: 'flow-state' }, badge(flow.state)),
    );
    const unfinished = flow.jobs.some((job) => !['succeeded', 'failed', 'cancelled'].includes(job.state));
    const retriable = flow.jobs.some((job) => job.state === 'failed' || job.state === 'cancelled');
    actions.replaceChildren(
      h('button', { type: 'button', id: 'cancel-flow', disabled: !unfinished,
        onclick: () => act('cancel') }, 'Cancel flow'),
      h('button', { type: 'button', id: 'retry-flow', disabled: !retriable,
        onclick: () => act('retry') }, 'Retry flow'),
    );
    const fields = [
      ['jobs', tally(flow.counts)],
      ['created', when(flow.created_ms)],
      ['key', flow.key ?? ''],
    ];
    details.replaceChildren(...fields.filter(([, value]) => value !== '')
      .flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]));
    table.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'id'), h('th', {}, 'ref'),
        h('th', {}, 'name'), h('th', {}, 'state'), h('th', { class: 'num' }, 'attempts'),
        h('th', {}, 'waits on'), h('th', { class: 'wide' }, 'reason'))),
      h('tbody', {}, flow.jobs.map((job) => {
        const link = `#/jobs/${job.id}`;
        const waits = after.get(job.id) ?? [];
        return h('tr', { 'data-id': job.id },
          h('td', { class: 'num' }, h('a', { href: link }, job.id)),
          h('td', {}, job.ref),
          h('td', { class: 'name' }, h('a', { href: link }, job.name || job.ref || `job ${job.id}`)),
          h('td', {}, badge(job.state)),
          h('td', { class: 'num' }, job.attempts),
          h('td', { class: 'after' },
            waits.map((other) => h('a', { href: `#/jobs/${other}`, class: 'chip' }, other))),
          h('td', { class: 'wide reason' }, job.reason));
      }))));
  }

  const stop = followChanges({ flow: id }, refresh, context.status);
  refresh.now();
  return () => {
    stop();
    refresh.stop();
  };
}
