"""ferry with Python on both ends: JOBS no-op calls submitted with
ferry.Client (in batches of 1,000) to the server at FERRY_SERVER, served by
WORKERS processes of ferry.Worker with 2 threads each, as the C++ workers of
bench/distributed.sh have. The clock starts once every worker asks for
calls, and stops when the client has seen every call end. Prints: <jobs> <seconds>.
Usage: ferry_python_peer.py JOBS WORKERS"""
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients",
                                "python"))
import ferry  # noqa: E402

# Not `noop`: the C++ workers of the same run serve that one.
FUNCTION = "python_noop"


def serve(number):
    worker = ferry.Worker(threads=2, id=f"python-bench-{number}")
    worker.add(FUNCTION, lambda args: args)
    worker.run()  # until SIGTERM


def main():
    jobs, workers = int(sys.argv[1]), int(sys.argv[2])
    processes = [mp.Process(target=serve, args=(n,)) for n in range(workers)]
    for process in processes:
        process.start()
    client = ferry.Client()
    for _ in range(600):  # at most 60 s for the workers to start
        serving = [w for w in client.workers() if f"function:{FUNCTION}" in w["labels"]]
        if len(serving) >= workers:
            break
        time.sleep(0.1)
    started = time.perf_counter()
    ids = []
    for begin in range(0, jobs, 1000):
        ids += client.call_many(FUNCTION, [1] * min(1000, jobs - begin))
    succeeded = sum(result.succeeded for result in client.as_completed(ids, timeout=600))
    seconds = time.perf_counter() - started
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=60)
    print(succeeded, seconds)
    return 0 if succeeded == jobs else 1


if __name__ == "__main__":
    sys.exit(main())
