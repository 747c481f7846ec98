"""Real ferry processes for the Python tests: a server on a free loopback
port with a database in a scratch directory, and workers. Everything
started is ended (by its pid) and the directory removed by stop().

The ferry binary comes from FERRY_BINARY (ctest sets it)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FERRY = os.environ.get("FERRY_BINARY", "ferry")
TOKEN = "python-test-token"


def wait_until(condition, what, seconds=30.0):
    """Polls `condition` every 20 ms; fails the test after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s: {what}")


class LocalServer:
    """`db`: a PostgreSQL URL (servers on one database take turns leading);
    by default an SQLite file of its own."""

    def __init__(self, token=TOKEN, db=None):
        self.dir = tempfile.mkdtemp(prefix="ferry-python-test-")
        self.token = token
        self.db = db or os.path.join(self.dir, "ferry.db")
        self.processes = []
        self.url = None
        self.start_server()

    def start_server(self, port=0):
        """Starts the server (again, on `port` when given: after a restart)."""
        address = os.path.join(self.dir, "address")
        if os.path.exists(address):
            os.remove(address)
        self.server = self.start([FERRY, "server", "--listen", f"127.0.0.1:{port}", "--db",
                                  self.db, "--address-file", address,
                                  "--token", self.token], "server.log")

        def started():
            if self.server.poll() is not None:
                raise AssertionError("the server did not start: " + self.log("server.log"))
            if not os.path.exists(address):
                return None
            with open(address) as file:
                return file.read().strip()

        self.url = wait_until(started, "the server listens")
        return self.server

    def stop_server(self):
        """SIGTERM, as systemd would send: what was accepted is durable."""
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(timeout=30)

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    def start(self, argv, log, env=None):
        """Starts a process with its output in the scratch directory."""
        with open(os.path.join(self.dir, log), "ab") as output:
            process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL,
                                       env=dict(os.environ, **(env or {})))
        self.processes.append(process)
        return process

    def start_python(self, script, log, *args):
        """Runs a Python script with the client on its path."""
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return self.start([sys.executable, script, *args], log,
                          env={"PYTHONPATH": here, "FERRY_SERVER": self.url,
                               "FERRY_TOKEN": self.token})

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as file:
                return file.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def role_of(url):
    """"leader", "standby", or None when the server does not answer."""
    import http.client
    import json
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    try:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        connection.request("GET", "/healthz")
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        return json.loads(body).get("role") if answer.status == 200 else None
    except (OSError, ValueError):
        return None


class LocalPostgres:
    """A throwaway PostgreSQL (scripts/local_postgres.sh: initdb into a
    scratch directory, a free port); `url` is its database. None of it when
    PostgreSQL is not installed: `unavailable` says why."""

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                          "scripts", "local_postgres.sh")

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-python-pg-")
        self.url = self.pid = self.unavailable = None
        # Files, not pipes: the server goes on with what the script had open.
        log, found = os.path.join(self.dir, "start.log"), os.path.join(self.dir, "started")
        with open(log, "wb") as output:
            started = subprocess.run(
                ["bash", "-c", 'source "$1" && start_local_postgres "$2" && '
                 'echo "$FERRY_PG_URL $local_postgres_pid" > "$3"', "_", self.SCRIPT, self.dir,
                 found], stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if started.returncode != 0:
            with open(log, errors="replace") as output:
                self.unavailable = output.read().strip()[-2000:] or "it did not start"
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        with open(found) as file:
            self.url, pid = file.read().split()
        self.pid = int(pid)

    def stop(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)  # a fast shutdown
            except ProcessLookupError:
                pass

            def gone():
                try:
                    with open(f"/proc/{self.pid}/stat") as stat:
                        return stat.read().split(") ", 1)[1].startswith("Z")
                except OSError:
                    return True

            wait_until(gone, "PostgreSQL stopped")
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)


class DroppingProxy:
    """An HTTP proxy on a free loopback port in front of `upstream` that,
    for the first `drops` requests `should_drop(method, path)` picks, lets
    the server answer and then closes the client's connection instead of
    passing the answer on: the server did the work, the client never heard.
    """

    def __init__(self, upstream, should_drop, drops=1):
        import http.client
        import socket
        import threading
        import urllib.parse

        self._http = http.client
        self._upstream = urllib.parse.urlsplit(upstream)
        self._should_drop, self.drops, self.dropped = should_drop, drops, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        import threading
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        reader = client.makefile("rb")
        try:
            while True:
                request_line = reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode().split(" ", 2)
                headers = {}
                while True:
                    line = reader.readline().decode().rstrip("\r\n")
                    if not line:
                        break
                    name, _, value = line.partition(":")
                    headers[name.strip()] = value.strip()
                body = reader.read(int(headers.get("Content-Length", 0) or 0))
                upstream = self._http.HTTPConnection(self._upstream.hostname,
                                                     self._upstream.port, timeout=30)
                headers.pop("Host", None)
                upstream.request(method, path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                with self._lock:
                    drop = self.dropped < self.drops and self._should_drop(method, path)
                    self.dropped += drop
                if drop:
                    return
                head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
                head += f"Content-Type: {answer.getheader('Content-Type', 'application/json')}\r\n"
                head += f"Content-Length: {len(data)}\r\n\r\n"
                client.sendall(head.encode() + data)
        except OSError:
            return
        finally:
            reader.close()
            client.close()

    def close(self):
        self._listener.close()
