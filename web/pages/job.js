// One job: its spec, its attempts (worker, times, exit code or signal,
// reason, CPU and memory, the tails of stdout and stderr), the jobs it
// waits on and its flow, and the actions cancel and retry. Live: the page follows this job's events and reads the
// job again when it changes.

import { get, post } from '../api.js';
import { follow } from '../events.js';
import { h, badge, duration, when, isFinal, refresher } from '../dom.js';
import { describe } from './jobs.js';

// When a job that waits on others runs: its spec's after_policy.
const AFTER_POLICIES = {
  success: 'runs when all succeeded',
  end: 'runs when all ended, however',
  failure: 'runs when all failed',
  one_success: 'runs when one succeeded',
  one_failed: 'runs when one failed',
};

export function mount(main, parameters, context) {
  const id = parameters.id;
  const header = h('div', { class: 'job-header' });
  const actions = h('div', { class: 'actions', id: 'job-actions' });
  const note = h('p', { class: 'small', id: 'action-note', role: 'status' });
  const details = h('dl', { class: 'details', id: 'job-details' });
  const attempts = h('section', { class: 'panel', id: 'attempts' });
  const spec = h('pre', { class: 'spec', id: 'job-spec' });
  main.append(
    h('p', { class: 'small' }, h('a', { href: '#/jobs' }, '« Jobs')),
    header,
    actions,
    note,
    details,
    attempts,
    h('section', { class: 'panel' }, h('h2', {}, 'Spec'), spec),
  );

  let current = null;
  const refresh = refresher(async () => {
    try {
      current = await get(`/v1/jobs/${id}`);
      draw(current, await waitsOn(current));
    } catch (problem) {
      if (problem.status === 404) {
        header.replaceChildren(h('h1', {}, `Job ${id}`));
        details.replaceChildren(h('p', { class: 'error' }, `There is no job ${id}.`));
      } else {
        context.problem(problem);
      }
    }
  }, 250);

  // The jobs this one waits on (`after`, refs resolved to ids by the
  // server), as [id, state]; the states of the first 50 only (a job may
  // wait on 1000).
  async function waitsOn(job) {
    return Promise.all((job.spec.after ?? []).map(async (other, i) => {
      const read = i < 50 ? await get(`/v1/jobs/${other}`).catch(() => null) : null;
      return [other, read?.state];
    }));
  }

  async function act(action) {
    note.textContent = '';
    try {
      const answer = await post(`/v1/jobs/${id}/${action}`);
      const result = answer.results[0];
      note.textContent = result.cancelled || result.retried
        ? (action === 'cancel' ? 'Cancelled.' : 'Queued again.')
        : result.detail;
    } catch (problem) {
      context.problem(problem);
    }
    refresh.request();
  }

  function draw(job, after) {
    header.replaceChildren(
      h('h1', {}, `Job ${job.id}`, job.name ? ` · ${job.name}` : ''),
      h('span', { id: 'job-state' }, badge(job.state)),
    );
    actions.replaceChildren(
      h('button', { type: 'button', id: 'cancel', disabled: isFinal(job.state),
        onclick: () => act('cancel') }, 'Cancel'),
      h('button', { type: 'button', id: 'retry',
        disabled: job.state !== 'failed' && job.state !== 'cancelled',
        onclick: () => act('retry') }, 'Retry'),
    );
    const fields = [
      ['runs', describe(job.spec)],
      ['queue', job.queue],
      ['priority', job.spec.priority ?? 0],
      ['created', when(job.created_ms)],
      ['retries', job.spec.retries ?? 0],
      ['timeout', job.spec.timeout ? duration(job.spec.timeout) : 'none'],
      ['reason', job.reason],
      ['held', job.held ?? ''],
      ['flow', job.flow ? h('a', { href: `#/flows/${job.flow}` }, `flow ${job.flow}`) : ''],
      ['waits on', after.length ? h('span', { id: 'waits-on' }, after.map(([other, state]) =>
        h('span', { class: 'dependency' },
          h('a', { href: `#/jobs/${other}`, class: 'chip' }, other), state ? badge(state) : null, ' ')),
        ` (${AFTER_POLICIES[job.spec.after_policy ?? 'success'] ?? job.spec.after_policy})`) : ''],
    ];
    details.replaceChildren(
      ...fields.filter(([, value]) => value !== '' && value !== undefined)
        .flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]),
    );
    attempts.replaceChildren(
      h('h2', {}, `Attempts (${job.attempts.length})`),
      ...(job.attempts.length
        ? job.attempts.slice().reverse().map((attempt, i) => drawAttempt(attempt, i === 0))
        : [h('p', { class: 'muted' }, 'Not started yet.')]),
    );
    spec.textContent = JSON.stringify(job.spec, null, 2);
  }

  const stop = follow({ ids: id }, { onEvents: () => refresh.request(), onStatus: context.status });
  refresh.now();
  return () => {
    stop();
    refresh.stop();
  };
}

function drawAttempt(attempt, open) {
  const ran = attempt.ended_ms ? (attempt.ended_ms - attempt.started_ms) / 1000 : undefined;
  const exit = attempt.signal ? `signal ${attempt.signal}`
    : attempt.exit_code !== undefined && attempt.exit_code !== null ? `exit ${attempt.exit_code}` : '';
  const facts = [
    attempt.worker && `on ${attempt.worker}`,
    when(attempt.started_ms),
    ran !== undefined && `ran ${duration(ran)}`,
    exit,
    attempt.cpu_us !== undefined && `CPU ${duration(attempt.cpu_us / 1e6)}`,
    attempt.max_rss_kb && `max RSS ${(attempt.max_rss_kb / 1024).toFixed(1)} MiB`,
  ].filter(Boolean);
  const output = (name, text) =>
    h('div', { class: 'output' },
      h('h4', {}, name),
      text ? h('pre', { class: `tail ${name}`, 'data-stream': name }, text)
        : h('p', { class: 'muted small' }, 'nothing'));
  return h('details', { class: 'attempt', open, 'data-attempt': attempt.number },
    h('summary', {}, `#${attempt.number} `, badge(attempt.end === 'lease_expired' ? 'lease expired' : attempt.end),
      attempt.reason ? ` ${attempt.reason}` : ''),
    h('p', { class: 'small muted' }, facts.join(' · ')),
    attempt.result !== undefined && attempt.result !== null
      ? h('div', { class: 'output' }, h('h4', {}, 'result'), h('pre', {}, JSON.stringify(attempt.result, null, 2)))
      : null,
    output('stdout', attempt.stdout),
    output('stderr', attempt.stderr));
}
