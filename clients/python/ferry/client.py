"""ferry.Client: submit jobs to a ferry server and collect their results.

    client = ferry.Client("http://queue-host:7077", token)
    job = client.call("square", 7)
    result = client.wait(job, timeout=10)
    if result.succeeded:
        print(result.value)  # 49

The server and the token default to FERRY_SERVER and FERRY_TOKEN. A job is
durable once the call that submitted it returned: the server committed it.
A submit whose every job has a key is sent again when its answer was lost
(a dropped connection, a timeout, a 503), within the client's `timeout`,
and gives the jobs the first one made: exactly-once submission. Waiting follows the server's event stream
(GET /v1/events), so a job's end is seen as soon as it is durable.

A flow is a batch whose jobs wait for each other: each names others of the
batch by their `ref` in its `after`, and runs once they succeeded (or as its
`after_policy` says); one that its dependencies rule out is cancelled,
skipped.

    build = ferry.command_job(shell="make", ref="build")
    tests = [ferry.command_job(shell=f"make {t}", ref=t, after=["build"]) for t in ("test-a", "test-b")]
    report = ferry.command_job(shell="make report", after=["test-a", "test-b"])
    flow = client.submit_flow([build, *tests, report], name="nightly", key="nightly-2025-11-25")
    client.wait_all(flow.ids); client.flow(flow.id)["state"]
"""

import dataclasses
import json
import time
import typing
import urllib.parse

from . import _http
from . import errors

__all__ = ["Client", "Flow", "Result", "call_job", "command_job"]

FINAL_STATES = ("succeeded", "failed", "cancelled")
# The ids of an event stream travel in its request line, which with the
# headers must fit in the server's 16 KiB: scattered ids take several streams.
_MAX_IDS_TEXT = 8000
_JOB_OPTIONS = ("queue", "name", "priority", "retries", "retry_delay", "timeout", "delay",
                "labels", "key", "keep", "concurrency_key", "ref", "after", "after_policy")


def _queue_path(name):
    # Escaped, a name that is no name reaches the server, which says why.
    return "/v1/queues/" + urllib.parse.quote(str(name), safe=":")


@dataclasses.dataclass
class Result:
    """How a job ended."""

    id: int
    state: str  # succeeded, failed or cancelled
    value: typing.Any = None  # what a call's function returned
    reason: str = ""  # why it failed or was cancelled: "exit 3", the exception, ...
    exit_code: typing.Optional[int] = None  # a command's exit status
    stdout: str = ""  # the last 64 KiB of each stream
    stderr: str = ""

    @property
    def succeeded(self):
        return self.state == "succeeded"

    @classmethod
    def from_event(cls, event):
        return cls(id=event["id"], state=event["state"], value=event.get("result"),
                   reason=event.get("reason", ""), exit_code=event.get("exit_code"),
                   stdout=event.get("stdout", ""), stderr=event.get("stderr", ""))


def _id_ranges(ids):
    """[1, 2, 3, 7] as "1-3,7", the form GET /v1/events takes."""
    parts, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[i - 1] + 1:
            parts.append(str(ids[start]) if i - start == 1 else f"{ids[start]}-{ids[i - 1]}")
            start = i
    return ",".join(parts)


@dataclasses.dataclass
class Flow:
    """A flow as submit_flow() made it (or found it, by its key)."""

    id: int
    ids: typing.List[int]  # its jobs' ids, in the order given
    refs: typing.Dict[str, int]  # the id of each job given a ref
    existing: bool = False  # a kept flow with the same key was there already


def _stream_groups(ids):
    """Sorted `ids` cut into groups whose "1-3,7" text fits in a request line."""
    group, text = [], 0
    for job in ids:
        if group and text + len(str(job)) + 1 > _MAX_IDS_TEXT:
            yield group
            group, text = [], 0
        group.append(job)
        text += len(str(job)) + 1  # at most: ranges only shorten it
    if group:
        yield group


def _job(kind, work, options):
    unknown = sorted(set(options) - set(_JOB_OPTIONS))
    if unknown:
        raise TypeError(f"unknown job options {unknown}: the options are {list(_JOB_OPTIONS)}")
    job = {kind: work}
    for name in _JOB_OPTIONS:
        if options.get(name) is not None:
            job[name] = list(options[name]) if name in ("labels", "after") else options[name]
    return job


def call_job(function, args=None, **options):
    """A call as a dict for submit_many() and submit_flow(). Options as for
    Client.call(), and for a flow `ref` (its name in the batch), `after` (the
    refs or ids of the jobs it waits for) and `after_policy`: when it runs
    rather than being skipped — "success" (the default: each of them
    succeeded), "end" (each ended, however), "failure" (each failed or was
    cancelled), "one_success" or "one_failed" (all ended, and at least one
    succeeded / did not)."""
    return _job("call", {"function": function, "args": args}, options)


def command_job(argv=None, *, shell=None, env=None, cwd=None, stdin=None, **options):
    """A command as a dict for submit_many() and submit_flow(): what
    Client.command() takes, with `ref`, `after` and `after_policy` as for
    call_job()."""
    if (argv is None) == (shell is None):
        raise ValueError("give exactly one of argv and shell")
    work = {"argv": list(argv)} if argv is not None else {"shell": shell}
    if env is not None:
        work["env"] = dict(env)
    if cwd is not None:
        work["cwd"] = cwd
    if stdin is not None:
        work["stdin"] = stdin
    return _job("command", work, options)


def _ids(ids):
    return [ids] if isinstance(ids, int) else list(ids)


class Client:
    """A connection to a ferry server. Safe to share between threads."""

    def __init__(self, url=None, token=None, *, timeout=30.0):
        """`url`: http://HOST:PORT or https://HOST:PORT, or several separated
        by commas, servers on one database: requests go to the one leading
        (default FERRY_SERVER, else http://127.0.0.1:7077); `token` (default
        FERRY_TOKEN); `timeout`: seconds a request may take. A bad URL raises
        ValueError."""
        self._http = _http.Http(_http.server_or_default(url), _http.token_or_default(token))
        self._timeout = timeout

    @property
    def url(self):
        return self._http.url

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    # Submitting.

    def submit(self, job):
        """Submits one job, a dict as docs/api.md describes ({"command": ...}
        or {"call": ...} with options); returns its id."""
        return self.submit_many([job])[0]

    def submit_many(self, jobs):
        """Submits 1 to 10,000 jobs in one request, all accepted together or
        none; returns their ids in order. A job whose key a kept job has is
        not made again: its place holds that job's id."""
        jobs = list(jobs)
        keyed = bool(jobs) and all(isinstance(job, dict) and job.get("key") for job in jobs)
        reply = self._http.call("POST", "/v1/jobs", {"jobs": jobs}, self._timeout, again=keyed)
        return reply["ids"]

    def submit_flow(self, jobs, *, name=None, key=None):
        """Submits 1 to 10,000 jobs as one flow (see call_job() and
        command_job() for `ref` and `after`); returns a Flow. All are made
        together or none: a ref named but not given, or a cycle, raises
        ferry.InvalidRequest. With `key`, a kept flow with that key is not
        made again (its jobs have no keys of their own), and the submit is
        sent again when its answer was lost."""
        jobs = list(jobs)
        flow = {}
        if name is not None:
            flow["name"] = name
        if key is not None:
            flow["key"] = key
        reply = self._http.call("POST", "/v1/jobs", {"jobs": jobs, "flow": flow},
                                self._timeout, again=key is not None)
        ids = reply["ids"]
        refs = {job["ref"]: job_id for job, job_id in zip(jobs, ids)
                if isinstance(job, dict) and job.get("ref")}
        return Flow(id=reply["flow"], ids=ids, refs=refs,
                    existing=bool(ids) and len(reply.get("existing", [])) == len(ids))

    def call(self, function, args=None, *, queue=None, name=None, priority=None, retries=None,
             retry_delay=None, timeout=None, delay=None, labels=None, key=None, keep=None,
             concurrency_key=None):
        """A call of `function` (served by a worker that registered it) with
        `args` (any JSON value: the function's one argument); returns its id.
        Options as in docs/api.md: `retries`, `timeout` and `delay` in
        seconds, `key` for exactly-once submission, `concurrency_key` for at
        most the queue's concurrency_limit running jobs with that key, ..."""
        options = dict(queue=queue, name=name, priority=priority, retries=retries,
                       retry_delay=retry_delay, timeout=timeout, delay=delay, labels=labels,
                       key=key, keep=keep, concurrency_key=concurrency_key)
        return self.submit(_job("call", {"function": function, "args": args}, options))

    def call_many(self, function, args_list, *, key=None, **options):
        """Calls of `function`, one per item of `args_list`, in one request;
        returns their ids in order. With `key`, call i gets the key
        "KEY/i". Other options as for call()."""
        options = dict(options)
        jobs = []
        for index, args in enumerate(args_list):
            options["key"] = None if key is None else f"{key}/{index}"
            jobs.append(_job("call", {"function": function, "args": args}, options))
        return self.submit_many(jobs)

    def command(self, argv=None, *, shell=None, env=None, cwd=None, stdin=None, **options):
        """A command run by a `ferry worker`: `argv` (a list: the program,
        searched in PATH, and its arguments) or `shell` (a script for
        /bin/sh -c); optional `env` (a dict added to the worker's
        environment), `cwd`, `stdin` (text). Options as for call(). Returns
        its id."""
        return self.submit(command_job(argv, shell=shell, env=env, cwd=cwd, stdin=stdin,
                                       **options))

    # Queues.

    def queue(self, name):
        """A queue's settings, running jobs and jobs by state (a dict, as
        GET /v1/queues/{name} gives it)."""
        return self._http.call("GET", _queue_path(name), None, self._timeout)

    def set_queue(self, name, **settings):
        """Changes a queue's settings: paused, max_running, rate ("50/s",
        "10/m", "100/h"), burst, concurrency_limit; None lifts max_running
        or rate. Returns the queue as queue() does."""
        return self._http.call("PATCH", _queue_path(name), settings, self._timeout, again=True)

    # Waiting.

    def wait(self, job, timeout=None):
        """Waits until the job ended; returns its Result. Raises
        ferry.TimeoutError after `timeout` seconds (the job goes on)."""
        for result in self.as_completed([job], timeout=timeout):
            return result

    def wait_all(self, jobs, timeout=None):
        """Waits until every job ended; returns their Results in the order of
        `jobs`."""
        results = {result.id: result for result in self.as_completed(jobs, timeout=timeout)}
        return [results[job] for job in jobs]

    def as_completed(self, jobs, timeout=None):
        """Yields the Result of each job as it ends (each once), until all
        ended. Raises ferry.TimeoutError once `timeout` seconds passed,
        ferry.NotFound for an unknown job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for group in _stream_groups(sorted(set(_ids(jobs)))):
            pending = set(group)
            while pending:
                # A stream starts with the current state of each job it names,
                # so one opened again after a break misses nothing.
                path = f"/v1/events?results=true&ids={_id_ranges(sorted(pending))}"
                heard = False
                try:
                    for data in self._http.events(path, deadline):
                        heard = True
                        event = json.loads(data)
                        if event.get("state") in FINAL_STATES and event.get("id") in pending:
                            pending.discard(event["id"])
                            yield Result.from_event(event)
                            if not pending:
                                break
                except errors.ConnectionError:
                    # A stream that worked and broke (a restarting server, a
                    # slow reader dropped) is followed anew; one that never
                    # worked is an error.
                    if not heard:
                        raise
                    time.sleep(0.1)

    # Reading and changing jobs.

    def status(self, job):
        """The job as GET /v1/jobs/{id} gives it: state, spec, attempts with
        their output... Raises ferry.NotFound for an unknown job."""
        return self._get(f"/v1/jobs/{int(job)}")

    def jobs(self, *, state=None, queue=None, text=None, before=None, limit=None):
        """One page of jobs, newest first: {"jobs": [...], "next_before": id
        or None}; pass `next_before` as `before` for the next page."""
        query = {name: value for name, value in
                 (("state", state), ("queue", queue), ("text", text), ("before", before),
                  ("limit", limit)) if value is not None}
        return self._get("/v1/jobs" + ("?" + urllib.parse.urlencode(query) if query else ""))

    def cancel(self, jobs):
        """Cancels a job id or a list of them; a running job is stopped on
        its worker. Returns one {"id", "cancelled", "detail"} per job."""
        return self._http.call("POST", "/v1/cancel", {"ids": _ids(jobs)},
                               self._timeout)["results"]

    def retry(self, jobs):
        """Queues failed or cancelled jobs again, with their retries anew.
        Returns one {"id", "retried", "detail"} per job."""
        return self._http.call("POST", "/v1/retry", {"ids": _ids(jobs)},
                               self._timeout)["results"]

    # Flows.

    def flow(self, flow):
        """The flow as GET /v1/flows/{id} gives it: its name, key, state
        (running until every job ended; then succeeded, failed or cancelled),
        counts by state, and its jobs (id, ref, name, state, reason,
        attempts). Raises ferry.NotFound for an unknown flow."""
        return self._get(f"/v1/flows/{int(flow)}")

    def flows(self, *, before=None, limit=None):
        """One page of flows, newest first, without their jobs: {"flows":
        [...], "next_before": id or None}."""
        query = {name: value for name, value in (("before", before), ("limit", limit))
                 if value is not None}
        return self._get("/v1/flows" + ("?" + urllib.parse.urlencode(query) if query else ""))

    def cancel_flow(self, flow):
        """Cancels every job of the flow not ended yet; returns one {"id",
        "cancelled", "detail"} per job."""
        return self._http.call("POST", f"/v1/flows/{int(flow)}/cancel", None,
                               self._timeout)["results"]

    def retry_flow(self, flow):
        """Queues the flow's failed and cancelled jobs again (the ones
        skipped come back with those they wait for); returns one {"id",
        "retried", "detail"} per job."""
        return self._http.call("POST", f"/v1/flows/{int(flow)}/retry", None,
                               self._timeout)["results"]

    # The server.

    def stats(self):
        return self._get("/v1/stats")

    def queues(self):
        return self._get("/v1/queues")["queues"]

    def workers(self):
        return self._get("/v1/workers")["workers"]

    def _get(self, path):
        return self._http.call("GET", path, timeout=self._timeout)
