"""Listens where NOTIFY_SOCKET will point, as systemd does for a unit of
Type=notify, and prints each message it receives on one line (its
assignments joined with ';'), until SIGTERM.
Usage: notify_socket.py PATH"""
import signal
import socket
import sys

listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
listener.bind(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("listening", flush=True)
while True:
    print(listener.recv(65536).decode(errors="replace").strip().replace("\n", ";"), flush=True)
