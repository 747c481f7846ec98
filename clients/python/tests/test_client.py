"""ferry.Client against a real server and `ferry worker`."""

import os
import socket
import threading
import unittest

import ferry
from support import TOKEN, DroppingProxy, LocalServer, wait_until


def unused_port():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = LocalServer()
        cls.server.start([os.environ.get("FERRY_BINARY", "ferry"), "worker", "--server",
                          cls.server.url, "--token", TOKEN, "--slots", "4"], "worker.log")
        cls.client = ferry.Client(cls.server.url, TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_a_command_runs_and_its_output_comes_back(self):
        job = self.client.command(["sh", "-c", "echo out; echo err >&2"], name="echo")
        result = self.client.wait(job, timeout=60)
        self.assertTrue(result.succeeded, result)
        self.assertEqual((result.id, result.exit_code, result.stdout, result.stderr),
                         (job, 0, "out\n", "err\n"))
        status = self.client.status(job)
        self.assertEqual((status["state"], status["name"]), ("succeeded", "echo"))
        self.assertEqual(status["attempts"][0]["exit_code"], 0)

    def test_a_failing_command_is_retried_and_fails_with_its_reason(self):
        job = self.client.command(shell="exit 3", retries=1, retry_delay=0.01,
                                  env={"X": "1"}, cwd="/", stdin="in")
        result = self.client.wait(job, timeout=60)
        self.assertEqual((result.state, result.reason, result.exit_code), ("failed", "exit 3", 3))
        self.assertEqual(len(self.client.status(job)["attempts"]), 2)

    def test_as_completed_gives_each_job_once_and_wait_all_keeps_the_order(self):
        jobs = [self.client.command(["sleep", f"0.{n}"]) for n in (3, 1, 2)]
        ended = [result.id for result in self.client.as_completed(jobs + jobs[:1], timeout=60)]
        self.assertEqual(sorted(ended), sorted(jobs))
        self.assertEqual([result.id for result in self.client.wait_all(jobs, timeout=60)], jobs)

    def test_many_scattered_ids_are_followed_on_several_streams(self):
        ids = self.client.submit_many([{"command": {"argv": ["true"]}, "delay": 600}] * 4000)
        self.assertTrue(all(r["cancelled"] for r in self.client.cancel(ids)))
        scattered = ids[::2]  # 2,000 ranges of one id: too many for one request line
        ended = list(self.client.as_completed(scattered, timeout=120))
        self.assertEqual(sorted(r.id for r in ended), scattered)
        self.assertEqual({r.state for r in ended}, {"cancelled"})

    def test_a_batch_is_one_request_and_keys_make_it_idempotent(self):
        jobs = [{"command": {"argv": ["true"]}, "key": f"batch-{n}"} for n in range(3)]
        first = self.client.submit_many(jobs)
        self.assertEqual(self.client.submit_many(jobs), first)
        self.assertEqual(len(set(first)), 3)

    def test_a_keyed_submit_is_sent_again_when_its_answer_is_lost(self):
        proxy = DroppingProxy(self.server.url, lambda method, path: path == "/v1/jobs", drops=2)
        try:
            with ferry.Client(proxy.url, TOKEN) as client:
                ids = client.call_many("nobody-serves-this", [1, 2], key="lost-answer")
            self.assertEqual(proxy.dropped, 2)
            # The server made them on the first try; the third request learned their ids.
            self.assertEqual(self.client.submit_many(
                [{"call": {"function": "nobody-serves-this", "args": n}, "key": f"lost-answer/{n}"}
                 for n in (0, 1)]), ids)
            self.client.cancel(ids)
        finally:
            proxy.close()

    def test_an_unkeyed_submit_whose_answer_is_lost_raises(self):
        proxy = DroppingProxy(self.server.url, lambda method, path: path == "/v1/jobs")
        try:
            with self.assertRaises(ferry.ConnectionError), ferry.Client(proxy.url, TOKEN) as client:
                client.command(["true"])
        finally:
            proxy.close()

    def test_a_flow_runs_in_order_and_reads_back(self):
        # build -> test-a, test-b -> report: each writes the time order it saw.
        log = os.path.join(self.server.dir, "flow-order")
        step = lambda name: f"sleep 0.1; echo {name} >> {log}"  # noqa: E731
        jobs = [ferry.command_job(shell=step("build"), ref="build", name="build"),
                ferry.command_job(shell=step("test-a"), ref="test-a", after=["build"]),
                ferry.command_job(shell=step("test-b"), ref="test-b", after=["build"]),
                ferry.command_job(shell=f"cat {log}", ref="report", after=["test-a", "test-b"])]
        flow = self.client.submit_flow(jobs, name="nightly")
        self.assertEqual(sorted(flow.refs), ["build", "report", "test-a", "test-b"])
        self.assertEqual([flow.refs[r] for r in ("build", "test-a", "test-b", "report")], flow.ids)
        results = self.client.wait_all(flow.ids, timeout=60)
        self.assertTrue(all(r.succeeded for r in results), results)
        order = results[-1].stdout.split()
        self.assertEqual((order[0], sorted(order[1:])), ("build", ["test-a", "test-b"]))
        read = self.client.flow(flow.id)
        self.assertEqual((read["id"], read["name"], read["state"]), (flow.id, "nightly", "succeeded"))
        self.assertEqual([(j["id"], j["ref"]) for j in read["jobs"]],
                         [(flow.refs[r], r) for r in ("build", "test-a", "test-b", "report")])
        self.assertIn(flow.id, [f["id"] for f in self.client.flows(limit=10)["flows"]])

    def test_a_failed_dependency_skips_the_rest_and_retry_flow_runs_them(self):
        marker = os.path.join(self.server.dir, "fixed")
        jobs = [ferry.command_job(shell=f"test -e {marker}", ref="check"),
                ferry.command_job(["true"], ref="after-success", after=["check"]),
                ferry.command_job(["true"], after=["check"], after_policy="end"),
                ferry.command_job(["true"], after=["check"], after_policy="failure")]
        flow = self.client.submit_flow(jobs)
        results = self.client.wait_all(flow.ids, timeout=60)
        self.assertEqual([r.state for r in results],
                         ["failed", "cancelled", "succeeded", "succeeded"])
        self.assertEqual(results[1].reason, f"dependency {flow.ids[0]} failed")
        self.assertEqual(self.client.flow(flow.id)["state"], "failed")
        open(marker, "w").close()
        retried = self.client.retry_flow(flow.id)
        self.assertEqual([r["id"] for r in retried if r["retried"]], [flow.ids[0]])
        wait_until(lambda: self.client.flow(flow.id)["state"] == "succeeded", "the flow succeeds")

    def test_cancel_flow_cancels_what_has_not_ended(self):
        flow = self.client.submit_flow([ferry.command_job(["sleep", "600"], ref="slow"),
                                        ferry.call_job("nobody-serves-this", after=["slow"])])
        cancelled = self.client.cancel_flow(flow.id)
        # Cancelling the first skips the second (cancelled as well, by then).
        self.assertEqual(sorted(r["id"] for r in cancelled), sorted(flow.ids))
        self.assertTrue(cancelled[0]["cancelled"], cancelled)
        self.assertEqual({r.state for r in self.client.wait_all(flow.ids, timeout=60)},
                         {"cancelled"})

    def test_a_keyed_flow_is_made_once(self):
        jobs = [ferry.call_job("f", 1, ref="a"), ferry.call_job("f", 2, after=["a"], delay=600)]
        first = self.client.submit_flow(jobs, key="flow-made-once")
        again = self.client.submit_flow(jobs, key="flow-made-once")
        self.assertEqual((again.id, again.ids, again.existing), (first.id, first.ids, True))
        self.assertFalse(first.existing)
        self.client.cancel_flow(first.id)

    def test_bad_flows_are_refused_and_make_nothing(self):
        before = self.client.flows(limit=1)["flows"]
        for jobs in ([ferry.call_job("f", ref="a", after=["b"])],  # no job b
                     [ferry.call_job("f", ref="a", after=["b"]),
                      ferry.call_job("f", ref="b", after=["a"])],  # a cycle
                     [ferry.call_job("f", ref="a"), ferry.call_job("f", ref="a")]):  # twice
            with self.assertRaises(ferry.InvalidRequest, msg=jobs):
                self.client.submit_flow(jobs)
        with self.assertRaises(ferry.NotFound):
            self.client.flow(10**9)
        with self.assertRaises(ValueError):
            ferry.command_job()
        self.assertEqual(self.client.flows(limit=1)["flows"], before)

    def test_cancel_and_retry(self):
        job = self.client.command(["true"], delay=600)
        self.assertEqual(self.client.cancel(job),
                         [{"id": job, "cancelled": True, "detail": ""}])
        self.assertEqual(self.client.wait(job, timeout=60).state, "cancelled")
        self.assertTrue(self.client.retry([job])[0]["retried"])
        self.assertEqual(self.client.wait(job, timeout=60).state, "succeeded")
        self.assertFalse(self.client.retry(job)[0]["retried"])

    def test_a_wait_past_its_timeout_raises_and_the_job_goes_on(self):
        job = self.client.command(["true"], delay=600)
        with self.assertRaises(ferry.TimeoutError):
            self.client.wait(job, timeout=0.3)
        self.assertEqual(self.client.status(job)["state"], "waiting")
        self.client.cancel(job)

    def test_lists_and_counts(self):
        job = self.client.command(["true"], queue="listed", name="listed job")
        self.client.wait(job, timeout=60)
        page = self.client.jobs(queue="listed", limit=10)
        self.assertEqual([j["id"] for j in page["jobs"]], [job])
        self.assertIsNone(page["next_before"])
        self.assertIn("listed", [queue["name"] for queue in self.client.queues()])
        self.assertGreaterEqual(self.client.stats()["total"], 1)
        self.assertTrue(any(w["free_slots"] >= 0 for w in self.client.workers()))

    def test_queue_controls_pause_and_limit_a_queue(self):
        self.assertEqual(self.client.set_queue("py-paused", paused=True)["paused"], True)
        job = self.client.command(["true"], queue="py-paused")
        with self.assertRaises(ferry.TimeoutError):
            self.client.wait(job, timeout=0.5)
        self.assertEqual(self.client.status(job)["state"], "queued")
        self.client.set_queue("py-paused", paused=False)
        self.assertEqual(self.client.wait(job, timeout=60).state, "succeeded")
        queue = self.client.set_queue("py-keyed", max_running=2, rate="100/s",
                                      concurrency_limit=1)
        self.assertEqual((queue["max_running"], queue["rate"], queue["concurrency_limit"]),
                         (2, "100/s", 1))
        jobs = [self.client.command(["true"], queue="py-keyed", concurrency_key="k")
                for _ in range(3)]
        self.assertTrue(all(r.succeeded for r in self.client.wait_all(jobs, timeout=60)))
        self.assertEqual(self.client.status(jobs[0])["spec"]["concurrency_key"], "k")
        self.assertIsNone(self.client.set_queue("py-keyed", max_running=None)["max_running"])
        with self.assertRaises(ferry.InvalidRequest) as refused:
            self.client.set_queue("py-keyed", rate="fast")
        self.assertIn("rate", refused.exception.detail)
        for odd in ("py-keyed?paused=true", "a b"):  # not cut into another queue's name
            with self.assertRaises(ferry.InvalidRequest) as refused:
                self.client.set_queue(odd, paused=True)
            self.assertIn("queue: may hold only", refused.exception.detail)
        self.assertFalse(self.client.queue("py-keyed")["paused"])

    def test_refusals_are_typed(self):
        with self.assertRaises(ferry.NotFound) as refused:
            self.client.status(10**9)
        self.assertEqual((refused.exception.status, refused.exception.error), (404, "not_found"))
        with self.assertRaises(ferry.InvalidRequest) as refused:
            self.client.command(["true"], priority=5000)
        self.assertIn("priority", refused.exception.detail)
        with self.assertRaises(ferry.NotFound):
            self.client.wait(10**9, timeout=10)
        with self.assertRaises(ferry.Unauthorized), ferry.Client(self.server.url, "wrong") as client:
            client.stats()
        self.assertTrue(issubclass(ferry.Unauthorized, ferry.ApiError))
        self.assertTrue(issubclass(ferry.ApiError, ferry.Error))

    def test_no_server_is_a_connection_error(self):
        port = unused_port()
        with self.assertRaises(ferry.ConnectionError), ferry.Client(f"http://127.0.0.1:{port}") as c:
            c.stats()
        with self.assertRaises(ferry.ConnectionError) as failed, ferry.Client(
                f"http://127.0.0.1:{port},http://127.0.0.1:{unused_port()}", timeout=1) as c:
            c.stats()
        self.assertIn("no server of http://127.0.0.1:", str(failed.exception))

    def test_a_server_list_goes_past_one_that_cannot_be_reached(self):
        servers = f"http://127.0.0.1:{unused_port()}, {self.server.url}"
        with ferry.Client(servers, TOKEN) as client:
            job = client.command(["true"])
            self.assertEqual(client.url, self.server.url)
            self.assertEqual(client.wait(job, timeout=60).state, "succeeded")

    def test_misspelled_options_are_refused(self):
        with self.assertRaises(TypeError):
            self.client.command(["true"], retires=3)
        with self.assertRaises(TypeError):
            self.client.call_many("f", [1], retires=3)
        with self.assertRaises(ValueError):
            self.client.command(["true"], shell="true")

    def test_urls_are_checked(self):
        for url in ("127.0.0.1:7077", "ftp://host:1", "http://host:1/path", "http://host:x",
                    "http://host:1,", "http://host:1,,http://host:2", "http://host:1,host:2"):
            with self.assertRaises(ValueError, msg=url):
                ferry.Client(url)
        self.assertEqual(ferry.Client("http://host:1/").url, "http://host:1")

    def test_the_environment_gives_the_defaults(self):
        saved = {name: os.environ.get(name) for name in ("FERRY_SERVER", "FERRY_TOKEN")}
        os.environ.update(FERRY_SERVER=self.server.url, FERRY_TOKEN=TOKEN)
        try:
            with ferry.Client() as client:
                self.assertIn("jobs", client.stats())
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def test_a_client_is_shared_by_threads(self):
        ids, problems = [], []

        def submit():
            try:
                for _ in range(5):
                    ids.append(self.client.command(["true"]))
            except Exception as problem:  # reported below
                problems.append(problem)

        threads = [threading.Thread(target=submit) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(problems, [])
        self.assertEqual(len(set(ids)), 20)
        self.assertTrue(all(r.succeeded for r in self.client.wait_all(ids, timeout=60)))


if __name__ == "__main__":
    unittest.main()
