"""HTTP/1.1 to a ferry server with the standard library (http.client).

One kept-alive connection per Http, opened again when the server closed it
while idle; a timeout on every request; HTTPS for https:// URLs, the
server's certificate checked against the system's authorities or those in
the file FERRY_TLS_CA names. Event streams (GET /v1/events) get a
connection of their own.

The server may be a comma-separated list (http://a:7077,http://b:7077):
servers sharing one database, one leading, the others standing by. A
request goes to the server last found leading; a standby refuses it with
503 not_leader before reading it, naming the leader, and the request goes
there (its URL learned if it was not in the list); a server that cannot be
reached, or a standby that knows no leader, sends it to the next one. A
round of the list without a leader is followed by a pause, within the
request's own time limit. As ferry's C++ client does.
"""

import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse

from . import errors

__all__ = ["Http", "server_or_default", "token_or_default", "encode"]

VERSION = "0.1.0"
DEFAULT_SERVER = "http://127.0.0.1:7077"
# The server sends a keep-alive line every 15 s: a stream silent this long
# is broken.
SILENCE = 50.0


def server_or_default(url):
    """`url`, else FERRY_SERVER, else http://127.0.0.1:7077."""
    return url or os.environ.get("FERRY_SERVER") or DEFAULT_SERVER


def token_or_default(token):
    """`token`, else FERRY_TOKEN, else none."""
    return token if token else os.environ.get("FERRY_TOKEN", "")


def encode(value):
    """A request body: compact JSON in UTF-8. NaN and infinities are refused
    (ValueError): JSON has no such numbers."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _describe(problem):
    return str(problem) or type(problem).__name__


class _Server:
    """One server of the list: its URL (without a trailing slash) and where
    to connect."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
                or parts.path not in ("", "/") or parts.query or parts.fragment):
            raise ValueError(f"'{url}' is not a server URL: give http://HOST:PORT or "
                             "https://HOST:PORT (or several, separated by commas)")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.https = parts.scheme == "https"


def _tls_context():
    return ssl.create_default_context(cafile=os.environ.get("FERRY_TLS_CA") or None)


class _Unreachable(errors.ConnectionError):
    """No connection to the server could be made: nothing was sent."""


def _not_leader(status, answer):
    """The leader a standby's refusal names ("" when none), or None when
    (status, answer) is no such refusal."""
    if status != 503:
        return None
    try:
        value = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("error") != "not_leader":
        return None
    leader = value.get("leader")
    return leader if isinstance(leader, str) else ""


class Http:
    def __init__(self, urls, token):
        try:
            self._servers = [_Server(url.strip()) for url in urls.split(",")]
        except ValueError as problem:
            if "," not in urls:
                raise
            raise ValueError(f"in the server list '{urls}': {problem}") from None
        self._current = 0
        self._tls = None
        if any(server.https for server in self._servers):
            self._tls = _tls_context()  # a bad FERRY_TLS_CA is told at once
        self._token = token
        self._connection = None
        self._interrupted = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self):
        """The server requests go to now: the one last found leading."""
        return self._servers[self._current].url

    def describe(self):
        """The servers, for messages."""
        return ", ".join(server.url for server in self._servers)

    def headers(self, has_body, accept="application/json"):
        headers = {"User-Agent": f"ferry-python/{VERSION}", "Accept": accept}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    def connect(self, timeout):
        server = self._servers[self._current]
        if server.https:
            if self._tls is None:  # a leader learned from a standby
                self._tls = _tls_context()
            return http.client.HTTPSConnection(server.host, server.port, timeout=timeout,
                                               context=self._tls)
        return http.client.HTTPConnection(server.host, server.port, timeout=timeout)

    def open(self, timeout):
        """A connection to the current server, connected: _Unreachable when
        it cannot be (then nothing was sent, and the next server may be
        tried)."""
        connection = self.connect(timeout)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as problem:
            connection.close()
            raise _Unreachable(
                f"cannot reach the server at {self.url}: {_describe(problem)}") from None
        return connection

    def request(self, method, path, body=None, timeout=30.0):
        """Sends one request to the leader; returns (status, body bytes).
        Raises ferry.ConnectionError when no server answered within
        `timeout` (or abort() cut it short)."""
        data = None if body is None else encode(body)
        self._interrupted.clear()
        with self._lock:
            try:
                return self._on_leader(time.monotonic() + timeout,
                                       lambda: self._send(method, path, data, timeout))
            except errors.ConnectionError as problem:
                self._after_silence()
                raise errors.ConnectionError(str(problem)) from None

    def _after_silence(self):
        """A server was silent: it may be stalled (paused, cut off) while
        another took over. The next request goes to the next server, which
        leads or names the leader, rather than to this one again."""
        if len(self._servers) > 1 and not self._interrupted.is_set():
            self._switch(self._current + 1)

    def _on_leader(self, give_up, attempt):
        """attempt() on the current server, and on the others as their
        answers or silence say, until one leads: its answer, (status, body
        bytes, ...). Past `give_up`, a standby's refusal, else
        ferry.ConnectionError."""
        backoff = 0.1
        tried = 0  # servers tried since the last pause
        while True:
            refused = None
            try:
                answer = attempt()
            except _Unreachable as problem:
                if len(self._servers) == 1 or self._interrupted.is_set():
                    raise
                unreachable = problem
                self._switch(self._current + 1)
            else:
                leader = _not_leader(answer[0], answer[1])
                if leader is None:
                    return answer
                refused = answer
                self._follow(leader)
            tried += 1
            if tried < len(self._servers):
                continue
            # A round found no leader: an election under way, or every server down.
            tried = 0
            if time.monotonic() + backoff >= give_up:
                if refused:
                    return refused
                raise errors.ConnectionError(
                    f"no server of {self.describe()} could be reached (the last: "
                    f"{_describe(unreachable)})")
            if self._interrupted.wait(backoff):
                raise errors.ConnectionError(
                    f"looking for the leader among {self.describe()} was interrupted")
            backoff = min(backoff * 2, 1.0)

    def _follow(self, leader):
        """Where a standby points (added to the list if new), unless that is
        where we are or nowhere: then the next server."""
        try:
            named = _Server(leader) if leader else None
        except ValueError:
            named = None
        if named is None or named.url == self.url:
            self._switch(self._current + 1)
            return
        for index, server in enumerate(self._servers):
            if server.url == named.url:
                self._switch(index)
                return
        self._servers.append(named)
        self._switch(len(self._servers) - 1)

    def _switch(self, index):
        self._current = index % len(self._servers)
        self._close()

    def _send(self, method, path, data, timeout):
        """One request to the current server. A kept-alive connection the
        server closed meanwhile is replaced once, and the request sent on
        the new one."""
        failure = None
        for _ in range(2):
            fresh = self._connection is None
            if fresh:
                self._connection = self.open(timeout)
            connection = self._connection
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, path, body=data,
                                   headers=self.headers(data is not None))
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as problem:
                self._close()
                if fresh or self._interrupted.is_set() or isinstance(problem, socket.timeout):
                    failure = problem
                    break
                continue
            if response.will_close:
                self._close()
            return response.status, answer
        raise errors.ConnectionError(
            f"no answer from the server at {self.url}: {_describe(failure)}")

    def abort(self):
        """Ends the request in flight from another thread (or a signal
        handler): it raises ferry.ConnectionError at once."""
        self._interrupted.set()
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def interrupted(self):
        """Whether abort() cut the last request short."""
        return self._interrupted.is_set()

    def close(self):
        with self._lock:
            self._close()

    def _close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(self, method, path, body=None, timeout=30.0, again=False):
        """The JSON of a 2xx answer. Raises ferry.ApiError for a refusal and
        ferry.ConnectionError for no answer. With `again`, no answer or a 503
        is followed by the same request, with backoff, within `timeout`."""
        give_up = time.monotonic() + timeout
        backoff = 0.1
        while True:
            try:
                status, answer = self.request(method, path, body,
                                              max(give_up - time.monotonic(), 0.1))
            except errors.ConnectionError:
                if not again or time.monotonic() + backoff > give_up:
                    raise
            else:
                if not (again and status == 503 and time.monotonic() + backoff <= give_up):
                    return self.checked(status, answer)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def checked(self, status, answer):
        """The JSON of a 2xx answer; else the ferry.ApiError it stands for."""
        try:
            value = json.loads(answer) if answer else None
        except ValueError:
            value = None
            if 200 <= status < 300:
                raise errors.Error(f"the answer of the server at {self.url} is not JSON: "
                                   f"{answer[:200]!r}") from None
        if 200 <= status < 300:
            return value
        error, detail = "", answer.decode("utf-8", "replace")[:200]
        if isinstance(value, dict):
            error, detail = str(value.get("error", "")), str(value.get("detail", ""))
        if status == 401:
            detail = f"the server at {self.url} refused the token ({detail})"
        raise errors.api_error(status, error, detail)

    def events(self, path, deadline=None):
        """Yields the data of each event of the Server-Sent Events stream at
        GET `path`, on a connection of its own. Raises ferry.ApiError when
        the stream is refused, ferry.ConnectionError when it cannot be
        opened, breaks, or stays silent for SILENCE seconds, and
        ferry.TimeoutError once `deadline` (time.monotonic()) passed."""

        def wait_for(limit):
            if deadline is None:
                return limit
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.TimeoutError("the wait ran past its timeout")
            return min(limit, remaining)

        def open_stream():
            connection = self.open(wait_for(SILENCE))
            try:
                connection.request("GET", path,
                                   headers=self.headers(False, accept="text/event-stream"))
                # Kept: the connection lets go of its socket once it learns
                # that the answer ends when the connection closes.
                sock = connection.sock
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as problem:
                connection.close()
                wait_for(SILENCE)  # past the deadline: a timeout, not a broken connection
                raise errors.ConnectionError(
                    f"no answer from the server at {self.url}: {_describe(problem)}") from None
            if response.status != 200:
                answer = response.read()
                connection.close()
                return response.status, answer, None
            return response.status, b"", (connection, response, sock)

        with self._lock:
            try:
                status, answer, stream = self._on_leader(
                    deadline if deadline is not None else time.monotonic() + SILENCE,
                    open_stream)
            except errors.ConnectionError as problem:
                self._after_silence()
                raise errors.ConnectionError(str(problem)) from None
        if stream is None:
            self.checked(status, answer)
        connection, response, sock = stream
        try:
            yield from self._read_events(response, sock, wait_for)
        except errors.ConnectionError:
            with self._lock:
                self._after_silence()  # ended or broke: where it goes on may be elsewhere
            raise
        finally:
            response.close()
            connection.close()

    def _read_events(self, response, sock, wait_for):
        data = []
        while True:
            sock.settimeout(wait_for(SILENCE))
            try:
                line = response.readline()
            except (OSError, http.client.HTTPException) as problem:
                failure = problem
                line = None
            if line is None:
                wait_for(SILENCE)
                raise errors.ConnectionError(
                    f"the event stream from {self.url} broke: {_describe(failure)}")
            if not line:
                raise errors.ConnectionError(f"the server at {self.url} ended the stream")
            line = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if not line:  # a blank line ends an event
                if data:
                    yield "\n".join(data)
                data = []
            elif line.startswith(":"):  # a comment: keep-alive
                continue
            else:
                field, _, value = line.partition(":")
                if field == "data":
                    data.append(value[1:] if value.startswith(" ") else value)
