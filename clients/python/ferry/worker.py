"""ferry.Worker: serve named functions to a ferry server from Python.

    worker = ferry.Worker("http://queue-host:7077", token)

    @worker.function("square")
    def square(n):
        return n * n

    worker.run()  # until stop(), SIGTERM or SIGINT

A function takes the call's `args` (any JSON value) and returns a JSON value;
one that raises fails that attempt, with the exception as the reason and its
traceback as stderr. The worker leases calls of its functions only (the
server sends a call of F only to workers serving F, and no command to this
one), runs them on `threads` threads and reports each result until the
server acknowledged it, across dropped connections and server restarts.

The protocol is docs/api.md's POST /v1/lease: each request carries the
results to report and a heartbeat per leased call, and asks for as many new
calls as there is room for; an idle worker long-polls. Results the server
refuses are dropped, never sent again: alone (listed in `rejected`), or all
those of a request it refused whole (400), whose jobs then run again once
their leases expire. A result too large or too deep for the API fails its
attempt here instead, with the reason.

stop() (or SIGTERM/SIGINT) drains: no new calls, the running ones finish,
their results are delivered (for at most 30 s once nothing runs), then
run() returns. A second stop() or signal returns at once, leaving running
calls behind: their jobs run again elsewhere once their leases expire.
"""

import collections
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import traceback

from . import _http
from . import errors

__all__ = ["Worker"]

log = logging.getLogger("ferry.worker")

# The API's limits on a report (docs/api.md): checked here so that one
# result can never make a whole report unreadable.
MAX_RESULT_BYTES = 1 << 20
MAX_VALUE_DEPTH = 32  # a scalar is 1, [1] is 2
MAX_REASON_BYTES = 4096
MAX_OUTPUT_BYTES = 64 << 10
MAX_FREE_SLOTS = 4096

IDLE_WAIT = 5.0  # seconds an idle worker's long poll may wait for work
DELIVERY_PATIENCE = 30.0  # stopping: how long to try delivering once nothing runs
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _text_head(text, limit):
    """The first `limit` bytes of `text` in UTF-8, on a character boundary."""
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def _text_tail(text, limit):
    """The last `limit` bytes of `text` in UTF-8, on a character boundary."""
    data = text.encode("utf-8", "replace")
    return data[max(0, len(data) - limit):].decode("utf-8", "ignore")


def _nests_deeper_than(value, limit):
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return False


def _why_not_sendable(value):
    """None when `value` can be a result; else why not."""
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as problem:
        return f"the result is not JSON: {problem}"
    if size > MAX_RESULT_BYTES:
        return f"the result is {size} bytes of JSON, more than {MAX_RESULT_BYTES}"
    if _nests_deeper_than(value, MAX_VALUE_DEPTH):
        return f"the result nests deeper than {MAX_VALUE_DEPTH} levels"
    return None


class _Call:
    __slots__ = ("job", "token", "function", "args", "taken_back")

    def __init__(self, job, token, function, args):
        self.job, self.token, self.function, self.args = job, token, function, args
        self.taken_back = False  # the server gave the job to another worker, or cancelled it


class Worker:
    """Serves functions to a ferry server; see the module's documentation."""

    def __init__(self, url=None, token=None, *, threads=None, id=None, queues=(), labels=()):
        """`url` (one server, or several on one database, separated by
        commas) and `token` default to FERRY_SERVER and FERRY_TOKEN;
        `threads`: calls at once (default: the number of cores); `id`: the
        name `ferry workers` shows (default HOST-PID); `queues`: take calls
        only from these (default: every queue); `labels`: what this worker
        has, for jobs that require labels."""
        self._http = _http.Http(_http.server_or_default(url), _http.token_or_default(token))
        self.id = id or f"{socket.gethostname()}-{os.getpid()}"
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._queues, self._labels = list(queues), list(labels)
        self._functions = {}
        self._lock = threading.Lock()
        self._work_ready = threading.Condition(self._lock)  # for the threads running calls
        self._results_ready = threading.Condition(self._lock)  # for the lease loop
        self._queued = collections.deque()
        self._in_flight = {}  # token -> _Call, queued or running
        self._finished = []  # reports not yet taken by the lease loop
        self._stops = 0
        self._signals = 0  # counted by the handler, which takes no lock
        self._polling_idle = False
        self._threads_done = False
        self._call_seconds = 0.0  # a moving average; 0 until a call finished

    @property
    def url(self):
        return self._http.url

    def function(self, name):
        """A decorator that registers the function under `name`."""

        def register(function):
            self.add(name, function)
            return function

        return register

    def add(self, name, function):
        """Registers `function` under `name` (1 to 128 letters, digits, _ - . :)."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a function name: 1 to 128 letters, digits, "
                             "_ - . and :")
        self._functions[name] = function

    def stop(self):
        """Drains (see the module's documentation); safe from any thread. A
        second call makes run() return at once."""
        with self._lock:
            self._stops += 1
            self._results_ready.notify_all()
        if self._polling_idle or self._stops >= 2:
            self._http.abort()

    def run(self, handle_signals=True):
        """Serves until stop(), or SIGTERM/SIGINT when `handle_signals` (and
        this is the main thread). Raises ferry.Unauthorized when the server
        refuses the token."""
        if not self._functions:
            raise ValueError("the worker has no functions: add some before run()")
        restore = self._handle_signals() if handle_signals else {}
        threads = [threading.Thread(target=self._serve_calls, name=f"ferry-call-{i}", daemon=True)
                   for i in range(self._threads)]
        for thread in threads:
            thread.start()
        try:
            self._lease_loop()
        finally:
            with self._lock:
                self._threads_done = True
                self._queued.clear()
                self._work_ready.notify_all()
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            self._http.close()

    def _handle_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum, frame):
            # No lock here: the interrupted code may hold it. The lease loop
            # turns the count into stops; a long poll is cut short.
            self._signals += 1
            if self._polling_idle:
                self._http.abort()

        return {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM,
                                                                         signal.SIGINT)}

    def _take_signals(self, seen):
        while seen[0] < self._signals:
            seen[0] += 1
            log.info("stopping on a signal (signal again to leave running calls behind)")
            self.stop()

    def _lease_loop(self):
        undelivered = []  # reports the server has not acknowledged, in the order sent
        backoff = 0.1
        unreachable = False
        give_up = None
        lease_seconds = 30.0
        signals_seen = [0]
        log.info("%s serving %s to %s with %d threads", self.id, ", ".join(sorted(self._functions)),
                 self.url, self._threads)
        while True:
            self._take_signals(signals_seen)
            with self._lock:
                undelivered.extend(self._finished)
                self._finished.clear()
                if self._stops >= 2 and self._in_flight:
                    log.warning("leaving %d calls behind; their jobs run again elsewhere",
                                len(self._in_flight))
                    self._in_flight.clear()
                    self._queued.clear()
                stopping = self._stops > 0
                if stopping and not self._in_flight:
                    if not undelivered:
                        log.info("all results delivered; stopping")
                        return
                    if give_up is None:
                        give_up = time.monotonic() + (2.0 if self._stops >= 2 else
                                                      DELIVERY_PATIENCE)
                    elif time.monotonic() > give_up:
                        log.warning("%d results could not be delivered; their jobs run again "
                                    "when their leases expire", len(undelivered))
                        return
                idle = not self._in_flight and not undelivered and not stopping
                request = self._lease_request(undelivered, idle, stopping)
                self._polling_idle = idle
            sent = list(undelivered)
            timeout = request["wait"] + 15
            if give_up is not None:  # stopping: within the patience left
                timeout = max(0.1, min(timeout, give_up - time.monotonic()))
            try:
                status, answer = self._http.request("POST", "/v1/lease", request,
                                                    timeout=timeout)
            except errors.ConnectionError as problem:
                if self._http.interrupted:
                    continue  # cut short by stop() or a signal
                if not unreachable:
                    log.warning("%s; retrying", problem)
                unreachable = True
                self._pause(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._polling_idle = False
            if unreachable:
                log.info("the server answers again")
                unreachable = False
            if status == 400 and sent:
                # Sending it again could never succeed, and would hold up
                # every heartbeat and new call with it.
                log.warning("the server refused our report (%s); dropping %d results, whose "
                            "jobs run again when their leases expire",
                            answer.decode("utf-8", "replace")[:200], len(sent))
                undelivered = undelivered[len(sent):]
                continue
            try:
                reply = self._http.checked(status, answer)
                if not (isinstance(reply, dict) and all(
                        isinstance(reply.get(key), list)
                        for key in ("jobs", "acknowledged", "stop"))):
                    raise errors.Error(f"not a lease answer: {answer[:200]!r}")
            except errors.Unauthorized:
                raise
            except errors.Error as problem:
                log.warning("%s; trying again", problem)
                self._pause(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            lease_seconds = float(reply.get("lease_seconds") or lease_seconds)
            undelivered = self._take(reply, sent, undelivered)
            with self._lock:
                # Calls run: report within a second, and heartbeat well
                # within the lease.
                if self._in_flight and not self._finished:
                    self._results_ready.wait(min(1.0, lease_seconds / 3))

    def _lease_request(self, undelivered, idle, stopping):
        # Enough calls queued that a thread never waits for a round trip:
        # deep for calls of microseconds, twice the threads for slow ones.
        per_thread = 2
        if self._call_seconds > 0:
            per_thread = int(min(256, max(2, 0.001 / self._call_seconds)))
        room = 0 if stopping else max(0, per_thread * self._threads - len(self._in_flight))
        labels = self._labels + [f"function:{name}" for name in sorted(self._functions)]
        return {
            "worker": self.id,
            "free_slots": min(room, MAX_FREE_SLOTS),
            "queues": self._queues,
            "labels": labels,
            "commands": False,
            "wait": IDLE_WAIT if idle else 0,
            "heartbeats": [{"job": call.job, "token": token}
                           for token, call in self._in_flight.items() if not call.taken_back],
            "completions": list(undelivered),
        }

    def _take(self, reply, sent, undelivered):
        """Acts on a lease answer; returns the reports still to deliver."""
        done = set()  # ids of reports the server is done with
        for item in reply.get("rejected") or []:
            index = item.get("index") if isinstance(item, dict) else None
            if isinstance(index, int) and 0 <= index < len(sent):
                done.add(id(sent[index]))
                log.warning("the server refused the result of job %s: %s", sent[index]["job"],
                            item.get("error"))
        acknowledged = set(reply["acknowledged"])
        undelivered = [report for report in undelivered
                       if id(report) not in done and report["token"] not in acknowledged]
        with self._lock:
            # stop_tokens name the attempts to stop: after a server restart
            # the same job may run here again under a newer lease, which
            # goes on. A server without them names jobs only.
            tokens = reply.get("stop_tokens")
            if not (isinstance(tokens, list) and len(tokens) == len(reply["stop"])):
                tokens = [None] * len(reply["stop"])
            for job, token in zip(reply["stop"], tokens):
                for call in self._in_flight.values():
                    if (call.job == job and token in (None, call.token)
                            and not call.taken_back):
                        log.info("job %s was taken back by the server", job)
                        call.taken_back = True
            for leased in reply["jobs"]:
                job, token = leased["id"], leased["token"]
                call = leased.get("spec", {}).get("call")
                function = self._functions.get(call.get("function")) if call else None
                if function is None:  # the server should not send it: say so
                    self._finished.append({"job": job, "token": token, "succeeded": False,
                                           "reason": "this worker serves no such function"})
                    continue
                self._in_flight[token] = _Call(job, token, function, call.get("args"))
                self._queued.append(self._in_flight[token])
            self._work_ready.notify_all()
        return undelivered

    def _pause(self, seconds):
        """Sleeps, waking early for a new stop or signal."""
        end = time.monotonic() + seconds
        with self._lock:
            stops, signals = self._stops, self._signals
            while (self._stops == stops and self._signals == signals
                   and time.monotonic() < end):
                self._results_ready.wait(min(0.25, end - time.monotonic()))

    def _serve_calls(self):
        while True:
            with self._lock:
                while not self._queued and not self._threads_done:
                    self._work_ready.wait()
                if self._threads_done:
                    return
                call = self._queued.popleft()
                if call.taken_back:  # not started: nobody needs its result
                    self._in_flight.pop(call.token, None)
                    continue
            started = time.monotonic()
            report = self._run(call)
            took = time.monotonic() - started
            with self._lock:
                self._call_seconds = took if not self._call_seconds else (
                    0.9 * self._call_seconds + 0.1 * took)
                if self._in_flight.pop(call.token, None) is not None:
                    self._finished.append(report)
                    self._results_ready.notify_all()

    @staticmethod
    def _run(call):
        report = {"job": call.job, "token": call.token}
        try:
            value = call.function(call.args)
        except BaseException as problem:  # a call may fail in any way; the worker goes on
            reason = f"{type(problem).__name__}: {problem}".replace("\n", " ")
            report.update(succeeded=False, reason=_text_head(reason, MAX_REASON_BYTES),
                          stderr=_text_tail(traceback.format_exc(), MAX_OUTPUT_BYTES))
            return report
        refusal = _why_not_sendable(value)
        if refusal:
            report.update(succeeded=False, reason=refusal)
        else:
            report.update(succeeded=True, reason="returned", result=value)
        return report
