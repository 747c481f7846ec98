"""beanstalkd: JOBS no-op jobs put on tube "tasks", WORKERS worker processes
reserve and delete each and put a result on tube "results", which the client
reserves. beanstalkd's protocol is plain text; this speaks it directly.
Prints: <jobs> <seconds>. Usage: beanstalk_peer.py JOBS WORKERS PORT"""
import multiprocessing as mp
import socket
import sys
import time


class Beanstalk:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def call(self, line, body=None):
        data = line.encode() + b"\r\n"
        if body is not None:
            data += body + b"\r\n"
        self.sock.sendall(data)
        return self.file.readline().decode().split()

    def put(self, body):
        reply = self.call(f"put 0 0 60 {len(body)}", body)
        assert reply[0] == "INSERTED", reply

    def reserve(self):
        reply = self.call("reserve")
        assert reply[0] == "RESERVED", reply
        body = self.file.read(int(reply[2]) + 2)[:-2]
        return reply[1], body

    def delete(self, job):
        assert self.call(f"delete {job}")[0] == "DELETED"


def worker(port):
    beanstalk = Beanstalk(port)
    beanstalk.call("watch tasks")
    beanstalk.call("ignore default")
    beanstalk.call("use results")
    while True:
        job, body = beanstalk.reserve()
        beanstalk.delete(job)
        if body == b"stop":
            return
        beanstalk.put(body)  # a no-op call: the result is its input


def main():
    jobs, workers, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    processes = [mp.Process(target=worker, args=(port,)) for _ in range(workers)]
    for process in processes:
        process.start()
    client = Beanstalk(port)
    client.call("use tasks")
    client.call("watch results")
    client.call("ignore default")
    started = time.perf_counter()
    for n in range(jobs):
        client.put(str(n).encode())
    for _ in range(jobs):
        job, _ = client.reserve()
        client.delete(job)
    seconds = time.perf_counter() - started
    for _ in processes:
        client.put(b"stop")
    for process in processes:
        process.join()
    print(jobs, seconds)


if __name__ == "__main__":
    main()
