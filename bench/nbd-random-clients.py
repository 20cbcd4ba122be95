# One NBD client of the memory benchmark (bench/nbd-memory.ts starts 50 of them):
# random 4 KiB READs and WRITEs (half each) spread over the whole export, DEPTH requests
# in flight, OPS requests in all. Seeded: python3 nbd-random-clients.py URI OPS DEPTH SEED.
import random
import sys

import nbd

uri, ops, depth, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
blocks = h.get_size() // 4096
data = nbd.Buffer.from_bytearray(bytearray(rng.randbytes(4096)))
bufs = [nbd.Buffer(4096) for _ in range(depth)]
sent = 0
done = 0


def completed(*_args):
    global done
    done += 1
    return 1


while done < ops:
    while sent < ops and h.aio_in_flight() < depth:
        offset = rng.randrange(blocks) * 4096
        if rng.random() < 0.5:
            h.aio_pread(bufs[sent % depth], offset, completion=completed)
        else:
            h.aio_pwrite(data, offset, completion=completed)
        sent += 1
    h.poll(-1)
h.shutdown()
