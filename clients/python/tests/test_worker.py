"""ferry.Worker against a real server, beside a C++ ferry::Worker."""

import os
import signal
import textwrap
import threading
import time
import unittest

import ferry
from ferry import worker as worker_module
from support import TOKEN, LocalServer, wait_until


class ServedWorker:
    """A ferry.Worker running on a thread of the test."""

    def __init__(self, url, **options):
        self.worker = ferry.Worker(url, TOKEN, **options)
        self.thread = None
        self.failure = None

    def start(self):
        def serve():
            try:
                self.worker.run(handle_signals=False)
            except Exception as problem:  # the test reads it
                self.failure = problem

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.worker.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"


class WorkerTest(unittest.TestCase):
    def setUp(self):
        # Cleanups run last first: workers a test starts stop before the server.
        self.server = LocalServer()
        self.addCleanup(self.server.stop)
        self.client = ferry.Client(self.server.url, TOKEN)
        self.addCleanup(self.client.close)

    def serve(self, **options):
        served = ServedWorker(self.server.url, **options)
        self.addCleanup(lambda: served.thread.is_alive() and served.stop())
        return served

    def test_calls_are_served_and_failures_carry_the_reason(self):
        served = self.serve(threads=2, id="python-worker")

        @served.worker.function("square")
        def square(n):
            return n * n

        @served.worker.function("fail")
        def fail(args):
            raise ValueError(f"no {args}")

        served.start()
        ids = self.client.call_many("square", list(range(20)))
        results = self.client.wait_all(ids, timeout=60)
        self.assertEqual([r.value for r in results], [n * n for n in range(20)])
        failed = self.client.wait(self.client.call("fail", "way"), timeout=60)
        self.assertEqual((failed.state, failed.reason), ("failed", "ValueError: no way"))
        self.assertIn("Traceback", failed.stderr)
        self.assertEqual(self.client.status(ids[0])["attempts"][0]["worker"], "python-worker")
        workers = {w["id"]: w for w in self.client.workers()}
        self.assertIn("function:square", workers["python-worker"]["labels"])
        served.stop()
        self.assertIsNone(served.failure)

    def test_results_past_the_api_limits_fail_their_attempt_and_the_worker_goes_on(self):
        served = self.serve(threads=1)
        deep = 1
        for _ in range(32):
            deep = [deep]  # 33 levels
        returns = {"big": "x" * (1 << 20), "deep": deep, "set": {1, 2}, "nan": float("nan"),
                   "fine": {"ok": [1, "two", None]}}
        served.worker.add("give", lambda name: returns[name])
        served.start()
        results = {name: self.client.wait(self.client.call("give", name), timeout=60)
                   for name in returns}
        self.assertIn("bytes of JSON, more than 1048576", results["big"].reason)
        self.assertEqual(results["deep"].reason, "the result nests deeper than 32 levels")
        self.assertIn("the result is not JSON", results["set"].reason)
        self.assertIn("the result is not JSON", results["nan"].reason)
        self.assertEqual(results["fine"].value, {"ok": [1, "two", None]})
        self.assertEqual([r.state for r in results.values()], ["failed"] * 4 + ["succeeded"])

    def test_stop_lets_running_calls_finish_and_delivers_their_results(self):
        served = self.serve(threads=1)
        started = threading.Event()

        def slow(n):
            started.set()
            time.sleep(1)
            return n

        served.worker.add("slow", slow)
        served.start()
        job = self.client.call("slow", 7)
        self.assertTrue(started.wait(60))
        served.stop()  # returns once the result is delivered
        self.assertEqual(self.client.status(job)["state"], "succeeded")

    def test_a_server_restart_loses_nothing(self):
        served = self.serve(threads=1)
        running = threading.Event()

        def slow(n):
            running.set()
            time.sleep(1.5)
            return -n

        served.worker.add("slow", slow)
        served.start()
        job = self.client.call("slow", 5)
        self.assertTrue(running.wait(60))
        port = self.server.port
        self.server.stop_server()
        self.server.start_server(port)
        # The attempt running during the restart is stale; the job runs
        # again and ends once, succeeded.
        self.assertEqual(self.client.wait(job, timeout=120).value, -5)
        served.stop()

    def test_a_python_worker_and_a_cpp_worker_serve_the_same_queue(self):
        # The C++ example worker serves `square` (each call takes 100 ms).
        self.server.start([os.environ["FERRY_CXX_TASK_WORKER"]], "cpp-worker.log",
                          env={"FERRY_SERVER": self.server.url, "FERRY_TOKEN": TOKEN})
        served = self.serve(threads=2, id="python-squares")

        @served.worker.function("square")
        def square(n):
            time.sleep(0.1)
            return n * n

        served.start()

        def both_serve():
            serving = [w for w in self.client.workers() if "function:square" in w["labels"]]
            return len(serving) == 2

        wait_until(both_serve, "both workers ask for calls of square")
        ids = self.client.call_many("square", list(range(40)))
        results = self.client.wait_all(ids, timeout=120)
        self.assertEqual([r.value for r in results], [n * n for n in range(40)])
        served_by = {self.client.status(job)["attempts"][-1]["worker"] for job in ids}
        self.assertIn("python-squares", served_by)
        self.assertEqual(len(served_by), 2, served_by)

    def test_sigterm_drains_a_worker_process(self):
        script = os.path.join(self.server.dir, "serve.py")
        with open(script, "w") as file:
            file.write(textwrap.dedent("""\
                import time, ferry
                worker = ferry.Worker(id="signalled")
                @worker.function("slow")
                def slow(n):
                    print("running", flush=True)
                    time.sleep(1)
                    return n + 1
                worker.run()
                print("stopped", flush=True)
                """))
        process = self.server.start_python(script, "signalled.log")
        job = self.client.call("slow", 1)
        wait_until(lambda: "running" in self.server.log("signalled.log"), "the call runs")
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=60), 0, self.server.log("signalled.log"))
        self.assertIn("stopped", self.server.log("signalled.log"))
        self.assertEqual(self.client.status(job)["state"], "succeeded")

    def test_sigterm_stops_an_idle_worker_without_complaint(self):
        # The signal cuts the idle long poll short: that is a stop, not a
        # server gone missing to warn about and retry.
        script = os.path.join(self.server.dir, "idle.py")
        with open(script, "w") as file:
            file.write(textwrap.dedent("""\
                import ferry
                worker = ferry.Worker(id="idle")
                worker.function("unused")(lambda: None)
                worker.run()
                print("stopped", flush=True)
                """))
        process = self.server.start_python(script, "idle.log")
        wait_until(lambda: any(w["id"] == "idle" for w in self.client.workers()),
                   "the worker's long poll reaches the server")
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=60), 0, self.server.log("idle.log"))
        log = self.server.log("idle.log")
        self.assertIn("stopped", log)
        self.assertNotIn("retrying", log)

    def test_a_wrong_token_ends_run(self):
        worker = ferry.Worker(self.server.url, "wrong")
        worker.add("square", lambda n: n * n)
        with self.assertRaises(ferry.Unauthorized):
            worker.run(handle_signals=False)


class LeaseAnswerTest(unittest.TestCase):
    """How the worker reads a lease answer (docs/api.md), without a server."""

    def test_acknowledged_and_rejected_reports_are_dropped_and_the_rest_kept(self):
        worker = ferry.Worker("http://127.0.0.1:1")
        worker.add("f", lambda args: args)
        sent = [{"job": 1, "token": 11}, {"job": 2, "token": 12}, {"job": 3, "token": 13}]
        later = {"job": 4, "token": 14}  # finished while the request was out
        reply = {"jobs": [], "acknowledged": [11], "stop": [],
                 "rejected": [{"index": 2, "job": 3, "token": 13, "error": "too deep"},
                              {"index": 9, "error": "an index past the request is ignored"}]}
        self.assertEqual(worker._take(reply, sent, sent + [later]), [sent[1], later])

    def test_calls_of_unknown_functions_are_refused_and_taken_back_ones_not_run(self):
        worker = ferry.Worker("http://127.0.0.1:1")
        worker.add("f", lambda args: args)
        reply = {"jobs": [{"id": 5, "token": 50, "spec": {"call": {"function": "g"}}},
                          {"id": 6, "token": 60, "spec": {"command": {"argv": ["true"]}}},
                          {"id": 7, "token": 70, "spec": {"call": {"function": "f", "args": 1}}}],
                 "acknowledged": [], "stop": []}
        worker._take(reply, [], [])
        self.assertEqual([(r["job"], r["succeeded"]) for r in worker._finished],
                         [(5, False), (6, False)])
        self.assertFalse(worker._in_flight[70].taken_back)
        worker._take({"jobs": [], "acknowledged": [], "stop": [7]}, [], [])
        self.assertTrue(worker._in_flight[70].taken_back)
        self.assertEqual(worker._lease_request([], False, False)["heartbeats"], [])

    def test_stop_tokens_take_back_only_the_old_attempt(self):
        # After a server restart this worker may hold job 7 twice: the lease
        # of token 70 from before, and 71 since. Only 70 is to stop.
        worker = ferry.Worker("http://127.0.0.1:1")
        worker.add("f", lambda args: args)
        spec = {"call": {"function": "f", "args": 1}}
        worker._take({"jobs": [{"id": 7, "token": 70, "spec": spec},
                               {"id": 7, "token": 71, "spec": spec}],
                      "acknowledged": [], "stop": []}, [], [])
        worker._take({"jobs": [], "acknowledged": [], "stop": [7], "stop_tokens": [70]}, [], [])
        self.assertTrue(worker._in_flight[70].taken_back)
        self.assertFalse(worker._in_flight[71].taken_back)
        # A server without stop_tokens names jobs only: every attempt of one stops.
        worker._take({"jobs": [], "acknowledged": [], "stop": [7]}, [], [])
        self.assertTrue(worker._in_flight[71].taken_back)

    def test_limits(self):
        self.assertIsNone(worker_module._why_not_sendable([[1]]))
        self.assertEqual(worker_module._text_tail("aé", 2), "é")
        self.assertEqual(worker_module._text_tail("aé", 1), "")
        self.assertEqual(worker_module._text_head("é" * 3000, 4096), "é" * 2048)
        with self.assertRaises(ValueError):
            worker_module.Worker("http://127.0.0.1:1").add("no spaces", print)


if __name__ == "__main__":
    unittest.main()
