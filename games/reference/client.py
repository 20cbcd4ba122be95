#!/usr/bin/env python3
"""Reference game client runner, stechec2-client's contract: `--name --rules --champion
--req_addr --sub_addr --socket_timeout --time --verbose --client_id [--map]`, the champion in
`$CHAMPION_PATH`. A C champion is `champion.so` exporting
`int play_turn(int turn, int ncells, const int *cells, int my_score, int their_score)`;
a Python champion is `champion.py` defining `play_turn(turn, cells, my_score, their_score)`.
Which one is read from the `_lang` file the compilation kept."""

import argparse
import ctypes
import importlib.util
import os
import sys

from common import Lines, connect, send

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--rules", required=True)
p.add_argument("--champion", required=True)
p.add_argument("--req_addr", required=True)
p.add_argument("--sub_addr", required=True)
p.add_argument("--socket_timeout", type=int, default=45000)
p.add_argument("--time", type=int, default=1500)
p.add_argument("--verbose", type=int, default=0)
p.add_argument("--client_id", type=int, required=True)
p.add_argument("--map")
a = p.parse_args()

home = os.environ.get("CHAMPION_PATH", os.path.dirname(a.champion))
lang = open(os.path.join(home, "_lang")).read().strip()
if lang == "c":
    lib = ctypes.CDLL(a.champion)
    lib.play_turn.restype = ctypes.c_int
    lib.play_turn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]

    def play(turn, cells, me, them):
        arr = (ctypes.c_int * len(cells))(*cells)
        return lib.play_turn(turn, len(cells), arr, me, them)
elif lang == "python":
    sys.path.insert(0, home)
    spec = importlib.util.spec_from_file_location("champion", os.path.join(home, "champion.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def play(turn, cells, me, them):
        return int(mod.play_turn(turn, list(cells), me, them))
else:
    raise SystemExit(f"client: unknown language {lang!r}")

sub = connect(a.sub_addr, a.socket_timeout / 1000)
req = connect(a.req_addr, a.socket_timeout / 1000)
send(req, {"client_id": a.client_id, "name": a.name})
if not Lines(req).read().get("ok"):
    raise SystemExit("client: refused by the server")
states = Lines(sub)
while True:
    st = states.read()
    if st is None or st.get("end"):
        break
    scores = st["scores"]
    me = scores[a.client_id]
    them = sum(scores) - me
    move = play(st["turn"], st["cells"], me, them)
    send(req, {"turn": st["turn"], "move": move})
if a.verbose:
    print(f"client {a.client_id}: game over", file=sys.stderr)
