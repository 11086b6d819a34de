"""One TCP connection from the virtual machine to a port on this machine's loopback.

qemu's user network runs this for each connection the appliance opens to the hub
(`guestfwd=tcp:10.0.2.100:PORT-cmd:python vm_relay.py HUBPORT`): the connection is this
process's stdin and stdout. Everything else the machine would send goes nowhere (`restrict=on`),
so a booted image never talks to another host.
"""
from __future__ import annotations

import os
import selectors
import socket
import sys


def relay(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "guest")
    sel.register(sock, selectors.EVENT_READ, "host")
    while sel.get_map():
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(0, 65536)
                if data:
                    sock.sendall(data)
                else:                      # the guest closed its side: pass the half-close on
                    sel.unregister(0)
                    sock.shutdown(socket.SHUT_WR)
            else:
                data = sock.recv(65536)
                if not data:
                    return
                while data:
                    data = data[os.write(1, data):]


if __name__ == "__main__":
    relay(int(sys.argv[1]))
