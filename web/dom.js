// Small helpers the pages share: building elements (text always goes in as
// text, never as HTML), formatting numbers and times, and a refresher that
// keeps a page's reads cheap for the server.

// h('a', {href: '#/jobs', class: 'x', onclick: f}, 'text', child, [more])
export function h(tag, properties = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(properties ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== 'string') element[name] = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) if (child) element.append(child);
  return element;
}

export const STATES = ['waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const isFinal = (state) => state === 'succeeded' || state === 'failed' || state === 'cancelled';

export function badge(state) {
  return h('span', { class: `badge state-${state}`, 'data-state': state }, state);
}

export function count(number) {
  return Number(number ?? 0).toLocaleString('en-US');
}

// "1 job", "2 jobs"
export function plural(number, noun) {
  return `${count(number)} ${noun}${Number(number) === 1 ? '' : 's'}`;
}

export function bytes(number) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(number ?? 0);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return '';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function ago(milliseconds) {
  if (!milliseconds) return '';
  const seconds = Math.max(0, (Date.now() - milliseconds) / 1000);
  if (seconds < 1) return 'just now';
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

// "2026-11-27 16:49:08", in this browser's time zone.
export function when(milliseconds) {
  if (!milliseconds) return '';
  const at = new Date(milliseconds);
  const two = (number) => String(number).padStart(2, '0');
  return `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ` +
    `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

// A read the page repeats when events say something changed: never two at
// once, at most one waiting, and spaced by at least `minimum` ms and twenty
// times what the last one took — so however busy the server, this page
// costs it a small share of its time.
export function refresher(task, minimum = 1000) {
  let running = false;
  let wanted = false;
  let timer = null;
  let last = 0;
  let cost = 0;
  let stopped = false;

  async function run() {
    timer = null;
    if (stopped) return;
    running = true;
    wanted = false;
    const began = performance.now();
    try {
      await task();
    } catch {
      // The task shows its own errors.
    }
    cost = performance.now() - began;
    last = performance.now();
    running = false;
    if (wanted) request();
  }

  function request() {
    if (stopped) return;
    wanted = true;
    if (running || timer) return;
    const wait = Math.max(0, last + Math.max(minimum, 20 * cost) - performance.now());
    timer = setTimeout(run, wait);
  }

  return {
    request,
    now: () => (timer ? undefined : run()),
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
