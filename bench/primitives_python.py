"""Python's multiprocessing primitives timed for bench/primitives.sh, the same
work as bench/primitives_bench.cpp; prints "name seconds" lines."""
import time
from multiprocessing import Barrier, Lock, Manager, Pipe, Process, Value, set_start_method

PAIRS = 1_000_000
TRIPS = 20_000
WARM_UP = 1_000


def lock_pairs(start, lock):
    start.wait()
    for _ in range(PAIRS):
        lock.acquire()
        lock.release()


def increments(start, counter):
    start.wait()
    for _ in range(PAIRS):
        with counter.get_lock():
            counter.value += 1


def echo(end, other):
    other.close()
    for _ in range(WARM_UP + TRIPS):
        end.send(end.recv())


def manager_calls(entries, seconds):
    for i in range(WARM_UP):
        entries[i] = i
    began = time.perf_counter()
    for i in range(TRIPS):
        entries[i] = i
    seconds.value = time.perf_counter() - began


def in_processes(target, *args):
    """Runs target in 2 processes started together; returns the wall time."""
    start = Barrier(3)
    processes = [Process(target=target, args=(start,) + args) for _ in range(2)]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    for process in processes:
        process.join()
    return time.perf_counter() - began


if __name__ == "__main__":
    set_start_method("fork")
    lock_seconds = in_processes(lock_pairs, Lock())
    counter = Value("q", 0)
    value_seconds = in_processes(increments, counter)
    assert counter.value == 2 * PAIRS, counter.value

    here, there = Pipe()
    child = Process(target=echo, args=(there, here))
    child.start()
    there.close()
    for i in range(WARM_UP):
        here.send(i)
        here.recv()
    began = time.perf_counter()
    for i in range(TRIPS):
        here.send(i)
        assert here.recv() == i
    pipe_seconds = time.perf_counter() - began
    child.join()

    with Manager() as manager:
        seconds = Value("d", 0)
        entries = manager.dict()  # kept here: the server drops a dict nobody refers to
        caller = Process(target=manager_calls, args=(entries, seconds))
        caller.start()
        caller.join()
        manager_seconds = seconds.value

    print("lock_pair %.12f" % (lock_seconds / (2 * PAIRS)))
    print("value_increment %.12f" % (value_seconds / (2 * PAIRS)))
    print("pipe_round_trip %.12f" % (pipe_seconds / TRIPS))
    print("manager_call %.12f" % (manager_seconds / TRIPS))
