"""Python's multiprocessing.Pool timings for bench/pool.sh, the same work as
bench/pool_bench.cpp; prints "name seconds" lines."""
import time
from multiprocessing import Pool


def square(n):
    return n * n


def timed(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


if __name__ == "__main__":
    with Pool(2) as pool:
        inputs = list(range(1_000_000))
        pool.map(square, inputs)  # warm up, as pool_bench.cpp does
        print("map_1m %.6f" % timed(lambda: pool.map(square, inputs)))
        print("map_100k_chunk1 %.6f" % timed(lambda: pool.map(square, inputs[:100_000], chunksize=1)))
        trips = 10_000
        seconds = timed(lambda: [pool.apply_async(square, (i,)).get() for i in range(trips)])
        print("round_trip %.9f" % (seconds / trips))
