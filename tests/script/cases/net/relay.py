#!/usr/bin/env python3
"""A tunnel for command-stream cases: relays stdin/stdout to 127.0.0.1:PORT
(what "ssh host nc localhost 110" does for a real user)."""
import os
import selectors
import socket
import sys

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
sock.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ, "in")
sel.register(sock, selectors.EVENT_READ, "sock")
open_in = True
while True:
    for key, _ in sel.select(timeout=20):
        if key.data == "in":
            data = os.read(0, 65536)
            if not data:
                sel.unregister(0)
                sock.shutdown(socket.SHUT_WR)
                open_in = False
            else:
                sock.sendall(data)
        else:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sys.exit(0)
            os.write(1, data)
