"""The task workers of the classic pair: serve `square` to a ferry server.
    FERRY_SERVER=http://queue-host:7077 FERRY_TOKEN=secret python3 task_worker.py
Start one on each machine that should help; stop with Ctrl-C."""
import time

import ferry

worker = ferry.Worker()  # FERRY_SERVER and FERRY_TOKEN


@worker.function("square")
def square(n):
    time.sleep(0.1)  # pretend to work
    return n * n


worker.run()
