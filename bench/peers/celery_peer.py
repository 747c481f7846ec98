"""Celery with Redis as broker and result backend: WORKERS worker processes
(prefork); the client sends JOBS no-op tasks and gets every result.
Prints: <jobs> <seconds>. Usage: CELERY_PEER_REDIS=redis://... celery_peer.py JOBS WORKERS"""
import os
import subprocess
import sys
import time

from celery import Celery

redis_url = os.environ.get("CELERY_PEER_REDIS", "redis://127.0.0.1:6379/0")  # workers too
app = Celery("celery_peer", broker=redis_url, backend=redis_url)
app.conf.update(worker_prefetch_multiplier=64, task_acks_late=False, result_expires=600,
                broker_connection_retry_on_startup=True)


@app.task
def noop(n):
    return None


def main():
    jobs, workers = int(sys.argv[1]), int(sys.argv[2])
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--concurrency",
         str(workers), "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=sys.path[0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        noop.delay(0).get(timeout=60)  # the worker is up
        started = time.perf_counter()
        pending = [noop.delay(n) for n in range(jobs)]
        for result in pending:
            result.get(timeout=300)
        seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait()
    print(jobs, seconds)


if __name__ == "__main__":
    main()
