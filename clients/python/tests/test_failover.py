"""ferry.Client and ferry.Worker given a list of servers on one PostgreSQL
database: they find the leader, follow a standby's not_leader, and carry on
when the leader is killed."""

import signal
import threading
import time
import unittest

import ferry
from support import TOKEN, LocalPostgres, LocalServer, role_of, wait_until


class Failover(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.postgres = LocalPostgres()
        if cls.postgres.unavailable:
            raise unittest.SkipTest(f"no PostgreSQL here: {cls.postgres.unavailable}")

    @classmethod
    def tearDownClass(cls):
        cls.postgres.stop()

    def setUp(self):
        # The first server leads; the second stands by.
        self.leader = LocalServer(db=self.postgres.url)
        self.addCleanup(self.leader.stop)
        wait_until(lambda: role_of(self.leader.url) == "leader", "the first server leads")
        self.standby = LocalServer(db=self.postgres.url)
        self.addCleanup(self.standby.stop)
        wait_until(lambda: role_of(self.standby.url) == "standby", "the second stands by")

    def test_a_client_given_only_a_standby_learns_the_leader(self):
        with ferry.Client(self.standby.url, TOKEN) as client:
            job = client.call("anything", key="learned")
            self.assertEqual(client.url, self.leader.url)
            self.assertEqual(client.status(job)["state"], "queued")

    def test_a_stalled_leader_is_left_for_the_server_that_took_over(self):
        client = ferry.Client(f"{self.leader.url},{self.standby.url}", TOKEN, timeout=3)
        self.addCleanup(client.close)
        client.stats()  # a kept-alive connection to the leader
        self.leader.server.send_signal(signal.SIGSTOP)
        self.addCleanup(self.leader.server.send_signal, signal.SIGCONT)
        wait_until(lambda: role_of(self.standby.url) == "leader", "the standby takes over")
        with self.assertRaises(ferry.ConnectionError):
            client.stats()  # the stalled leader took it and never answers
        self.assertIn("jobs", client.stats())  # the next request goes on, not back
        self.assertEqual(client.url, self.standby.url)
        job = client.call("anything", key="after-the-stall")
        self.assertEqual(client.status(job)["state"], "queued")

    def test_nothing_acknowledged_is_lost_when_the_leader_is_killed(self):
        servers = f"{self.standby.url},{self.leader.url}"  # the standby first: it sends them on
        client = ferry.Client(servers, TOKEN, timeout=60)
        self.addCleanup(client.close)
        ids = client.call_many("square", list(range(40)), key="before")
        self.assertEqual(client.url, self.leader.url)

        worker = ferry.Worker(servers, TOKEN, threads=2, id="python-failover")
        calls = []

        @worker.function("square")
        def square(n):
            calls.append(n)
            time.sleep(0.05)
            return n * n

        failure = []

        def serve():
            try:
                worker.run(handle_signals=False)
            except Exception as problem:  # the test reads it
                failure.append(problem)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.addCleanup(lambda: thread.join(timeout=60))
        self.addCleanup(worker.stop)
        wait_until(lambda: len(calls) >= 10, "the worker runs calls")

        self.leader.server.send_signal(signal.SIGKILL)
        self.leader.server.wait()
        wait_until(lambda: role_of(self.standby.url) == "leader", "the standby takes over")
        ids += client.call_many("square", list(range(40, 60)), key="after")
        self.assertEqual(client.url, self.standby.url)

        results = client.wait_all(ids, timeout=120)
        self.assertEqual([result.state for result in results], ["succeeded"] * 60)
        self.assertEqual([result.value for result in results], [n * n for n in range(60)])
        for job in ids:  # recorded once, whoever ran it
            attempts = client.status(job)["attempts"]
            ended = [a for a in attempts if a["end"] in ("succeeded", "failed")]
            self.assertEqual(len(ended), 1, attempts)
        self.assertEqual(worker.url, self.standby.url)
        self.assertEqual(failure, [])


if __name__ == "__main__":
    unittest.main()
