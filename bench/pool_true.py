"""Python's usual answer: multiprocessing.Pool(P) mapping subprocess.run.

Usage: pool_true.py P INPUTS PROGRAM [ARGS...]  (one job per line of the
INPUTS file, the line appended as the last argument, as xargs -n1 does)."""
import subprocess
import sys
from multiprocessing import Pool


def run(argv):
    return subprocess.run(argv).returncode


if __name__ == "__main__":
    processes, inputs, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    with open(inputs) as lines:
        jobs = [command + [line.rstrip("\n")] for line in lines if line.strip()]
    with Pool(processes) as pool:
        failed = sum(1 for code in pool.imap_unordered(run, jobs, chunksize=1) if code)
    sys.exit(min(failed, 101))
