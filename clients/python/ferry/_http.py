"""HTTP/1.1 to a ferry server with the standard library (http.client).

One kept-alive connection per Http, opened again when the server closed it
while idle; a timeout on every request; HTTPS for https:// URLs, the
server's certificate checked against the system's authorities or those in
the file FERRY_TLS_CA names. Event streams (GET /v1/events) get a
connection of their own.
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
# A request that may be sent twice (a read, a submit whose every job has a
# key) is sent again after no answer or a 503 for this long, as ferry's C++
# client does.
SEND_AGAIN_FOR = 60.0
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


class Http:
    def __init__(self, url, token):
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
                or parts.path not in ("", "/") or parts.query or parts.fragment):
            raise ValueError(f"'{url}' is not a server URL: give http://HOST:PORT or "
                             "https://HOST:PORT")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.hostname
        self._port = port or (443 if parts.scheme == "https" else 80)
        self._tls = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context(cafile=os.environ.get("FERRY_TLS_CA") or None)
        self._token = token
        self._connection = None
        self._aborted = False
        self._lock = threading.Lock()

    def headers(self, has_body, accept="application/json"):
        headers = {"User-Agent": f"ferry-python/{VERSION}", "Accept": accept}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    def connect(self, timeout):
        if self._tls:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def request(self, method, path, body=None, timeout=30.0):
        """Sends one request; returns (status, body bytes). Raises
        ferry.ConnectionError when no answer came within `timeout`. A
        kept-alive connection the server closed meanwhile is replaced once,
        and the request sent on the new one."""
        data = None if body is None else encode(body)
        failure = None
        with self._lock:
            self._aborted = False
            for _ in range(2):
                fresh = self._connection is None
                if fresh:
                    self._connection = self.connect(timeout)
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
                    if fresh or self._aborted or isinstance(problem, socket.timeout):
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
        self._aborted = True
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
        is followed by the same request, with backoff, for SEND_AGAIN_FOR."""
        give_up = time.monotonic() + SEND_AGAIN_FOR
        backoff = 0.1
        while True:
            try:
                status, answer = self.request(method, path, body, timeout)
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

        connection = self.connect(wait_for(SILENCE))
        response = None
        try:
            try:
                connection.request("GET", path,
                                   headers=self.headers(False, accept="text/event-stream"))
                # Kept: the connection lets go of its socket once it learns
                # that the answer ends when the connection closes.
                sock = connection.sock
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as problem:
                failure = problem
            else:
                failure = None
            if failure is not None:
                wait_for(SILENCE)  # past the deadline: a timeout, not a broken connection
                raise errors.ConnectionError(
                    f"no answer from the server at {self.url}: {_describe(failure)}")
            if response.status != 200:
                self.checked(response.status, response.read())
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
        finally:
            if response is not None:
                response.close()
            connection.close()
