"""What the reference game's server and client share: the stechec2-style command line, the
IPC addresses (`ipc://<path>`: a unix socket) and the line-delimited JSON framing."""

import json
import socket


def ipc_path(addr):
    if not addr.startswith("ipc://"):
        raise SystemExit(f"expected an ipc:// address, got {addr!r}")
    return addr[len("ipc://"):]


def read_map(path):
    """`turns N` and `cells a b c …` lines; `#` starts a comment."""
    turns, cells = 30, [5, 3, 8, 1, 9, 2, 7, 4]
    if path:
        with open(path) as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                if words[0] == "turns" and len(words) == 2:
                    turns = int(words[1])
                elif words[0] == "cells" and len(words) >= 2:
                    cells = [int(w) for w in words[1:]]
                else:
                    raise SystemExit(f"bad map line: {line.strip()!r}")
    if not 1 <= turns <= 1000 or not 1 <= len(cells) <= 64:
        raise SystemExit("map out of bounds (1-1000 turns, 1-64 cells)")
    return turns, cells


MAX_LINE = 1 << 20


class Lines:
    """Reads JSON lines from a socket; `None` at end of stream. The other end may be a hostile
    champion writing on its runner's socket: a line that is not JSON reads as `{}` (an invalid
    message), and a line longer than MAX_LINE ends the stream instead of growing the buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {}

    def has_line(self):
        return b"\n" in self.buf


def send(sock, obj):
    sock.sendall(json.dumps(obj).encode() + b"\n")


def connect(addr, timeout_s):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    s.connect(ipc_path(addr))
    s.settimeout(None)
    return s
