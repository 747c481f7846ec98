// The jobs: newest first, filtered by state, queue and text, a page at a
// time (the API's cursor, so paging stays cheap over millions of jobs).
// Live: the page is read again when the (coalesced) event stream says jobs
// of its queue changed, at most once a second: rows change state, and on
// the first page new jobs appear as they are submitted.

import { get, query } from '../api.js';
import { followChanges } from '../events.js';
import { h, STATES, badge, ago, when, refresher } from '../dom.js';

export function mount(main, parameters, context) {
  const filter = {
    state: STATES.includes(parameters.state) ? parameters.state : '',
    queue: parameters.queue ?? '',
    text: parameters.text ?? '',
    before: /^[1-9][0-9]*$/.test(parameters.before ?? '') ? parameters.before : '',
  };
  const queueNames = h('datalist', { id: 'queue-names' });
  const form = h(
    'form',
    { id: 'filters', class: 'filters' },
    h('label', {}, 'State ',
      h('select', { id: 'filter-state', name: 'state' },
        h('option', { value: '' }, 'any'),
        STATES.map((state) => h('option', { value: state, selected: state === filter.state }, state)))),
    h('label', {}, 'Queue ',
      h('input', { id: 'filter-queue', name: 'queue', value: filter.queue, list: 'queue-names',
        autocomplete: 'off', placeholder: 'any' })),
    h('label', {}, 'Text ',
      h('input', { id: 'filter-text', name: 'text', type: 'search', value: filter.text,
        placeholder: 'in the name or command' })),
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '#/jobs', class: 'quiet-link' }, 'Clear'),
    queueNames,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `#/jobs${query({ state: data.get('state'), queue: data.get('queue').trim(),
      text: data.get('text') })}`;
  });
  form.querySelector('select').addEventListener('change', () => form.requestSubmit());

  const table = h('div', { class: 'table-wrap', id: 'jobs' });
  const pager = h('nav', { class: 'pager', id: 'pager' });
  const heading = filter.before ? `Jobs before ${filter.before}` : 'Jobs';
  main.append(h('h1', {}, heading), form, table, pager);

  let newest = 0;  // the newest job shown, to mark those that come after it

  const refresh = refresher(async () => {
    try {
      const page = await get(`/v1/jobs${query({ ...filter, limit: 50 })}`);
      draw(page);
    } catch (problem) {
      context.problem(problem);
    }
  });

  function draw(page) {
    const previous = newest;
    newest = page.jobs.length ? page.jobs[0].id : newest;
    if (!page.jobs.length) {
      table.replaceChildren(h('p', { class: 'muted', id: 'no-jobs' }, 'No jobs match.'));
    } else {
      table.replaceChildren(
        h('table', { class: 'jobs' },
          h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'id'), h('th', {}, 'name'),
            h('th', {}, 'queue'), h('th', {}, 'state'), h('th', { class: 'num' }, 'attempts'),
            h('th', { class: 'wide' }, 'reason'), h('th', { class: 'wide' }, 'created'))),
          h('tbody', {}, page.jobs.map((item) => row(item, previous && item.id > previous)))));
    }
    const links = [];
    if (filter.before) links.push(h('a', { href: `#/jobs${query({ ...filter, before: '' })}` }, '« Newest'));
    if (page.next_before)
      links.push(h('a', { href: `#/jobs${query({ ...filter, before: page.next_before })}`, id: 'older' }, 'Older »'));
    pager.replaceChildren(...links);
  }

  function row(item, fresh) {
    const name = item.name || describe(item.spec);
    return h('tr', { 'data-id': item.id, class: fresh ? 'fresh' : '' },
      h('td', { class: 'num' }, h('a', { href: `#/jobs/${item.id}` }, item.id)),
      h('td', { class: 'name' }, h('a', { href: `#/jobs/${item.id}` }, name)),
      h('td', {}, item.queue), h('td', {}, badge(item.state)),
      h('td', { class: 'num' }, item.attempts), h('td', { class: 'wide reason' }, item.reason),
      h('td', { class: 'wide', title: when(item.created_ms) }, ago(item.created_ms)));
  }

  get('/v1/queues')
    .then((listed) =>
      queueNames.replaceChildren(...listed.queues.map((item) => h('option', { value: item.name }))))
    .catch(() => {});
  const stop = followChanges(filter.queue ? { queue: filter.queue } : {}, refresh, context.status);
  refresh.now();
  return () => {
    stop();
    refresh.stop();
  };
}

// A job without a name: what it runs.
export function describe(spec) {
  if (!spec) return '';
  if (spec.command?.argv) return spec.command.argv.join(' ');
  if (spec.command?.shell) return spec.command.shell;
  if (spec.call) return `${spec.call.function}(…)`;
  return '';
}
