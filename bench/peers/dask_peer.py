"""Dask distributed: a local scheduler and WORKERS worker processes (one
thread each); the client maps a no-op over JOBS inputs and gathers them.
Prints: <jobs> <seconds>. Usage: dask_peer.py JOBS WORKERS"""
import logging
import sys
import time

from dask.distributed import Client, LocalCluster


def noop(n):
    return None


def main():
    jobs, workers = int(sys.argv[1]), int(sys.argv[2])
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        client.submit(noop, -1).result()  # the workers are up
        started = time.perf_counter()
        futures = client.map(noop, range(jobs), pure=False)
        client.gather(futures)
        seconds = time.perf_counter() - started
    print(jobs, seconds)


if __name__ == "__main__":
    main()
