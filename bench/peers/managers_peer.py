"""The classic multiprocessing.managers design: a manager serves a task queue
and a result queue on a socket with a shared key; worker processes take
tasks and put results. Prints: <jobs> <seconds>.
Usage: managers_peer.py JOBS WORKERS"""
import multiprocessing as mp
import queue
import sys
import time
from multiprocessing.managers import BaseManager

tasks, results = queue.Queue(), queue.Queue()


class Manager(BaseManager):
    pass


def serve_queues():
    Manager.register("tasks", callable=lambda: tasks)
    Manager.register("results", callable=lambda: results)


def worker(address):
    Manager.register("tasks")
    Manager.register("results")
    manager = Manager(address=address, authkey=b"bench")
    manager.connect()
    task_queue, result_queue = manager.tasks(), manager.results()
    while True:
        n = task_queue.get()
        if n is None:
            return
        result_queue.put((n, None))  # a no-op call


def main():
    jobs, workers = int(sys.argv[1]), int(sys.argv[2])
    serve_queues()
    manager = Manager(address=("127.0.0.1", 0), authkey=b"bench")
    manager.start()
    task_queue, result_queue = manager.tasks(), manager.results()
    processes = [mp.Process(target=worker, args=(manager.address,)) for _ in range(workers)]
    for process in processes:
        process.start()
    started = time.perf_counter()
    for n in range(jobs):
        task_queue.put(n)
    for _ in range(jobs):
        result_queue.get(timeout=120)
    seconds = time.perf_counter() - started
    for _ in processes:
        task_queue.put(None)
    for process in processes:
        process.join()
    manager.shutdown()
    print(jobs, seconds)


if __name__ == "__main__":
    main()
