"""The task manager of the classic pair: 10 random integers squared by the
task workers, on this machine or others, through a ferry server.
    FERRY_SERVER=http://queue-host:7077 FERRY_TOKEN=secret python3 task_manager.py"""
import random
import sys

import ferry

client = ferry.Client()  # FERRY_SERVER and FERRY_TOKEN
numbers = [random.randint(0, 10000) for _ in range(10)]
print("put tasks", *numbers)
ids = client.call_many("square", numbers)  # durable once this returns
asked, received = dict(zip(ids, numbers)), 0
try:
    for result in client.as_completed(ids, timeout=10):
        n = asked[result.id]
        print(f"result: {n} * {n} = {result.value if result.succeeded else result.reason}")
        received += result.succeeded
except ferry.TimeoutError as timeout:
    print("task manager:", timeout)
print(f"task manager: {received} of 10 results")
sys.exit(0 if received == 10 else 1)
