#!/usr/bin/env python3
"""Reference game server, stechec2-server's contract: `--rules --rep_addr --pub_addr
--nb_clients --time --socket_timeout --dump --replay --stats --verbose [--map]` (plus the
game's own `--turns --seed`). Clients subscribe on the pub socket and talk on the rep socket.
At the end, the per-player results are YAML documents on stdout (`player`, `score`,
`nb_timeout`), as stechec2 prints them.

The game: cells hold values; every turn each player picks a cell. A cell picked by one player
alone gives that player its value; a cell picked by several gives nothing. Picked cells drop
to 0, the others grow by 1 (up to 9). A missing, late or invalid answer counts a timeout."""

import argparse
import json
import os
import select
import socket
import sys
import time

from common import MAX_LINE, Lines, ipc_path, read_map, send

p = argparse.ArgumentParser()
p.add_argument("--rules", required=True)
p.add_argument("--rep_addr", required=True)
p.add_argument("--pub_addr", required=True)
p.add_argument("--nb_clients", type=int, required=True)
p.add_argument("--time", type=int, default=3000, help="ms a client has to answer a turn")
p.add_argument("--socket_timeout", type=int, default=45000, help="ms to wait for clients to connect")
p.add_argument("--dump")
p.add_argument("--replay")
p.add_argument("--stats")
p.add_argument("--verbose", type=int, default=0)
p.add_argument("--map")
p.add_argument("--turns", type=int)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

turns, cells = read_map(a.map)
if a.turns is not None:
    turns = a.turns
n = a.nb_clients


def listen(addr):
    path = ipc_path(addr)
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(n)
    return s


def log(*args):
    if a.verbose:
        print(*args, file=sys.stderr, flush=True)


rep, pub = listen(a.rep_addr), listen(a.pub_addr)
deadline = time.monotonic() + a.socket_timeout / 1000
subs, reqs, names = [], {}, {}
pending = []
while len(subs) < n or len(names) < n:
    left = deadline - time.monotonic()
    if left <= 0:
        print(f"server: only {len(names)}/{n} clients connected in time", file=sys.stderr)
        sys.exit(3)
    ready, _, _ = select.select([rep, pub] + pending, [], [], left)
    for s in ready:
        if s is pub:
            sub = pub.accept()[0]
            # A subscriber that stops reading is dropped rather than blocking the game.
            sub.settimeout(a.time / 1000)
            subs.append(sub)
        elif s is rep:
            pending.append(rep.accept()[0])
        else:
            pending.remove(s)
            lines = Lines(s)
            # A connection that never says hello must not stall the others.
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                hello = lines.read()
            except OSError:
                hello = None
            s.settimeout(None)
            cid = hello.get("client_id") if isinstance(hello, dict) else None
            if not isinstance(cid, int) or not 0 <= cid < n or cid in reqs:
                s.close()
                continue
            reqs[cid], names[cid] = lines, str(hello.get("name", cid))
            send(s, {"ok": True, "nb_clients": n})
            log(f"client {cid} ({names[cid]}) connected")

scores, timeouts = [0] * n, [0] * n
alive = set(range(n))
dump, replay = [], []
for turn in range(turns):
    state = {"turn": turn, "cells": list(cells), "scores": list(scores)}
    dump.append(state)
    for s in subs:
        try:
            send(s, state)
        except OSError:
            pass
    moves = {}
    turn_deadline = time.monotonic() + a.time / 1000
    waiting = set(alive)
    while waiting:
        # Lines already buffered first, then the sockets, until the turn's deadline.
        for cid in list(waiting):
            while reqs[cid].has_line():
                msg = reqs[cid].read()
                if isinstance(msg, dict) and msg.get("turn") == turn:
                    moves[cid] = msg.get("move")
                    waiting.discard(cid)
                    break
        left = turn_deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        ready, _, _ = select.select([reqs[c].sock for c in waiting], [], [], left)
        for cid in list(waiting):
            if reqs[cid].sock in ready:
                try:
                    chunk = reqs[cid].sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk or len(reqs[cid].buf) > MAX_LINE:
                    alive.discard(cid)
                    waiting.discard(cid)
                    log(f"client {cid} left at turn {turn}")
                else:
                    reqs[cid].buf += chunk
    picks = {}
    for cid in range(n):
        m = moves.get(cid)
        if isinstance(m, int) and 0 <= m < len(cells):
            picks.setdefault(m, []).append(cid)
        else:
            timeouts[cid] += 1
    for cell, who in picks.items():
        if len(who) == 1:
            scores[who[0]] += cells[cell]
    cells = [0 if i in picks else min(9, v + 1) for i, v in enumerate(cells)]
    replay.append(f"{turn} " + " ".join(str(moves.get(c, -1)) for c in range(n)))

for s in subs:
    try:
        send(s, {"end": True, "scores": scores})
    except OSError:
        pass

if a.dump:
    with open(a.dump, "w") as f:
        json.dump({"turns": dump, "final": {"cells": cells, "scores": scores}}, f)
if a.replay:
    with open(a.replay, "w") as f:
        f.write("reference-game replay v1\n" + "\n".join(replay) + "\n")
if a.stats:
    with open(a.stats, "w") as f:
        f.write(f"turns: {turns}\nclients: {n}\ntimeouts: [{', '.join(map(str, timeouts))}]\n")
for cid in range(n):
    print(f"---\nplayer: {names[cid]}\nscore: {scores[cid]}\nnb_timeout: {timeouts[cid]}")
sys.stdout.flush()
