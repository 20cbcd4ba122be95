import { expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Redacted, TestClock } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { WINDOW } from "../../../src/actors/hfs/transfer/digest.js"
import { encodeEnd, encodeHello, encodeWindowHead, type Frame, makeDecoder, makeFrameParser, WINDOW_MAX_BODY } from "../../../src/actors/hfs/transfer/frames.js"
import { frameSocket } from "../../../src/actors/hfs/transfer/socket-io.js"
import { imageDigestPromise } from "../../../src/actors/hfs/transfer/image-digest.js"
import { stopHashThreads } from "../../../src/actors/hfs/transfer/hash-pool.js"
import { readProgress } from "../../../src/actors/hfs/transfer/receive.js"
import { transferMessage } from "../../../src/actors/hfs/transfer/token.js"
import * as timeauth from "../../../src/runtime/timeauth.js"
import { allocatedBytes, seedFrom, writeScatteredImage } from "./images.js"
import { corruptingRelay, failureOf, incomingEntries, MiB, receive, run, sameBytes, secret, source, workDir } from "./support.js"

// The home transfer between two HFS on loopback, on real sparse files.

it.live(
  "a 256 MiB sparse image arrives byte-identical, holes kept, wire bytes ≤ 1.05 × allocated",
  () =>
    Effect.gen(function* () {
      const w = workDir("whole")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      const seed = seedFrom("HFS_TRANSFER_SEED", "256 MiB scattered image")
      const src = path.join(w.a, "alice.nbd")
      writeScatteredImage(src, 256 * MiB, 48 * MiB, seed)
      const srv = yield* source(src)
      const r = yield* receive(srv.port, w.b, "alice", 7)
      const dst = path.join(w.b, "alice.nbd")
      expect(yield* Effect.promise(() => sameBytes(src, dst))).toBe(true)
      const srcAlloc = allocatedBytes(src)
      console.log(`allocated source ${srcAlloc}, destination ${allocatedBytes(dst)}, wire ${r.wireBytes} (${(r.wireBytes / srcAlloc).toFixed(4)} × allocated)`)
      expect(r.bytes).toBe(256 * MiB)
      expect(r.allocatedBytes).toBe(allocatedBytes(dst))
      // Pages are the unit: a run widened to whole pages may allocate a page more.
      expect(Math.abs(allocatedBytes(dst) - srcAlloc)).toBeLessThanOrEqual(srcAlloc * 0.01 + 64 * 1024)
      expect(r.wireBytes).toBeLessThanOrEqual(1.05 * srcAlloc)
      expect(r.digest).toBe(yield* Effect.promise(() => imageDigestPromise(src)))
      expect(r.resumedFrom).toBe(0)
      expect(incomingEntries(w.b)).toEqual([])
    }).pipe(Effect.scoped),
  120_000
)

it.live("the digest reads holes and written zeroes alike, and any changed byte changes it", () =>
  Effect.gen(function* () {
    const w = workDir("digest")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    const size = 9 * MiB + 1000
    const data = Buffer.alloc(3 * 4096, 0x11)
    const make = (name: string, f: (fd: number) => void) => {
      const p = path.join(w.a, name)
      const fd = fs.openSync(p, "w")
      fs.ftruncateSync(fd, size)
      f(fd)
      fs.closeSync(fd)
      return p
    }
    const holes = make("holes", (fd) => fs.writeSync(fd, data, 0, data.length, 5 * MiB + 4096))
    const zeroes = make("zeroes", (fd) => {
      fs.writeSync(fd, Buffer.alloc(6 * MiB), 0, 6 * MiB, 0)
      fs.writeSync(fd, data, 0, data.length, 5 * MiB + 4096)
      fs.writeSync(fd, Buffer.alloc(1000), 0, 1000, size - 1000)
    })
    const changed = make("changed", (fd) => {
      fs.writeSync(fd, data, 0, data.length, 5 * MiB + 4096)
      fs.writeSync(fd, Buffer.from([1]), 0, 1, size - 1)
    })
    const [dh, dz, dc] = yield* Effect.promise(() => Promise.all([holes, zeroes, changed].map(imageDigestPromise)))
    expect(allocatedBytes(zeroes)).toBeGreaterThan(allocatedBytes(holes) + 5 * MiB)
    expect(dz).toBe(dh)
    expect(dc).not.toBe(dh)
  }).pipe(Effect.scoped)
)

it.live(
  "a chunk damaged on the wire is refused with its offset, nothing is renamed into place, the retry resumes after the last verified window",
  () =>
    Effect.gen(function* () {
      const w = workDir("corrupt")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      // Four full windows of data: each frame is 5 + 42 + 12 (one run) + 4 MiB bytes after the 33-byte start.
      const src = path.join(w.a, "bob.nbd")
      writeScatteredImage(src, 32 * MiB, 0, 1)
      const fd = fs.openSync(src, "r+")
      const block = Buffer.alloc(4 * WINDOW)
      for (let i = 0; i < block.length; i++) block[i] = (i * 7 + 3) & 0xff
      fs.writeSync(fd, block, 0, block.length, 0)
      fs.closeSync(fd)
      const before = yield* Effect.promise(() => imageDigestPromise(src))
      const srv = yield* source(src)
      const frame = 5 + 42 + 12 + WINDOW
      const relay = yield* corruptingRelay(srv.port, 33 + 2 * frame + 59 + 12345)
      const exit = yield* Effect.exit(receive(relay.port, w.b, "bob", 3, { checkpointBytes: 1 }))
      const e = failureOf(exit)
      expect(e._tag).toBe("ChecksumMismatch")
      expect(e._tag === "ChecksumMismatch" && e.offset).toBe(2 * WINDOW)
      expect(fs.existsSync(path.join(w.b, "bob.nbd"))).toBe(false)
      expect(yield* Effect.promise(() => imageDigestPromise(src))).toBe(before)
      // Windows 0 and 1 were verified and journaled before the damaged one.
      expect(yield* Effect.promise(() => readProgress(w.b, "bob", 3))).toBe(2 * WINDOW)
      const r = yield* receive(srv.port, w.b, "bob", 3)
      expect(r.resumedFrom).toBe(2 * WINDOW)
      expect(yield* Effect.promise(() => sameBytes(src, path.join(w.b, "bob.nbd")))).toBe(true)
      expect(r.digest).toBe(before)
    }).pipe(Effect.scoped),
  60_000
)

it.live(
  "an ext4 home made with mke2fs -d passes e2fsck -fn after the transfer",
  () =>
    Effect.gen(function* () {
      const w = workDir("ext4")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      const seed = seedFrom("HFS_TRANSFER_EXT4_SEED", "ext4 home files")
      const tree = path.join(w.root, "skel")
      fs.mkdirSync(path.join(tree, "src/deep/er"), { recursive: true })
      let x = seed
      for (let i = 0; i < 40; i++) {
        const size = ((x = (x * 1103515245 + 12345) >>> 0) % (600 * 1024)) + 1
        const b = Buffer.alloc(size)
        for (let j = 0; j < size; j += 4) b.writeUInt32LE((x = (x * 1664525 + 1013904223) >>> 0), Math.min(j, size - 4 < 0 ? 0 : size - 4))
        fs.writeFileSync(path.join(tree, i % 3 === 0 ? "src/deep/er" : i % 2 === 0 ? "src" : ".", `f${i}.bin`), b)
      }
      fs.symlinkSync("src/f2.bin", path.join(tree, "link"))
      const src = path.join(w.a, "carol.nbd")
      fs.closeSync(fs.openSync(src, "w"))
      fs.truncateSync(src, 256 * MiB)
      const mk = yield* Effect.promise(() =>
        run("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", "-d", tree, "-E", "lazy_itable_init=1,lazy_journal_init=1", src])
      )
      expect(mk.code, mk.out).toBe(0)
      const srv = yield* source(src)
      const r = yield* receive(srv.port, w.b, "carol", 1)
      const dst = path.join(w.b, "carol.nbd")
      expect(yield* Effect.promise(() => sameBytes(src, dst))).toBe(true)
      const fsck = yield* Effect.promise(() => run("e2fsck", ["-fn", dst]))
      expect(fsck.code, fsck.out).toBe(0)
      expect(r.wireBytes).toBeLessThanOrEqual(1.05 * allocatedBytes(src))
    }).pipe(Effect.scoped),
  60_000
)

it.live(
  "hash threads that die in the middle fail the transfer, nothing reaches the final path, and the retry resumes with fresh threads",
  () =>
    Effect.gen(function* () {
      const w = workDir("threads")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      const src = path.join(w.a, "cyd.nbd")
      writeScatteredImage(src, 64 * MiB, 40 * MiB, 7)
      const before = yield* Effect.promise(() => imageDigestPromise(src))
      const srv = yield* source(src)
      let windows = 0
      // Both sides' threads are this process's: whichever side notices first, the transfer fails.
      const exit = yield* Effect.exit(
        receive(srv.port, w.b, "cyd", 4, { checkpointBytes: 1, onWindow: () => void (++windows === 3 && stopHashThreads()) })
      )
      const e = failureOf(exit)
      expect(e.message).toMatch(/hash thread/)
      expect(fs.existsSync(path.join(w.b, "cyd.nbd"))).toBe(false)
      // The checkpoint started when the first window landed completes despite the failure.
      const verified = yield* Effect.promise(() => readProgress(w.b, "cyd", 4))
      expect(verified).toBeGreaterThan(0)
      const r = yield* receive(srv.port, w.b, "cyd", 4)
      expect(r.resumedFrom).toBe(verified)
      expect(yield* Effect.promise(() => sameBytes(src, path.join(w.b, "cyd.nbd")))).toBe(true)
      expect(r.digest).toBe(before)
    }).pipe(Effect.scoped),
  60_000
)

it.live("a wrong secret, or a token made for another generation, is refused; the source opens nothing", () =>
  Effect.gen(function* () {
    const w = workDir("auth")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    const src = path.join(w.a, "dave.nbd")
    writeScatteredImage(src, 8 * MiB, 1 * MiB, 5)
    let resolved = 0
    const srv = yield* source(src, { resolve: () => Effect.sync(() => (resolved++, src)) })
    const wrong = yield* Effect.exit(receive(srv.port, w.b, "dave", 4, { secret: Redacted.make("another secret") }))
    const e = failureOf(wrong)
    expect(e._tag).toBe("TransferAuthRefused")
    // A genuine token for generation 3, replayed with generation 4 in the request.
    const token = yield* timeauth.generate(secret, transferMessage("dave", 3, "127.0.0.1"))
    const answer = yield* Effect.promise(() => rawExchange(srv.port, encodeHello({ login: "dave", generation: 4, from: 0, token })))
    expect(answer).toMatch(/TransferAuthRefused/)
    // A signed request for a path-like login never reaches resolve either.
    const dotdot = yield* timeauth.generate(secret, transferMessage("../dave", 4, "127.0.0.1"))
    expect(yield* Effect.promise(() => rawExchange(srv.port, encodeHello({ login: "../dave", generation: 4, from: 0, token: dotdot })))).toMatch(/invalid login/)
    expect(resolved).toBe(0)
    expect(fs.existsSync(path.join(w.b, "dave.nbd"))).toBe(false)
    // The right token works.
    yield* receive(srv.port, w.b, "dave", 4)
    expect(resolved).toBe(1)
  }).pipe(Effect.scoped)
)

/** Sends `bytes` on a fresh connection and collects what comes back until the source closes. */
const rawExchange = (port: number, bytes: Buffer): Promise<string> =>
  new Promise((resolve, reject) => {
    const s = net.createConnection({ host: "127.0.0.1", port })
    let got = ""
    s.on("data", (c: Buffer) => (got += c.toString("latin1")))
    s.on("error", reject)
    s.on("close", () => resolve(got))
    s.write(bytes)
  })

it.live("garbage sent to the source closes that connection only; the next transfer is served", () =>
  Effect.gen(function* () {
    const w = workDir("garbage")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    const src = path.join(w.a, "erin.nbd")
    writeScatteredImage(src, 8 * MiB, 2 * MiB, 9)
    const srv = yield* source(src)
    const answers = yield* Effect.promise(() =>
      Promise.all([
        rawExchange(srv.port, Buffer.from("GET / HTTP/1.1\r\n\r\n")),
        rawExchange(srv.port, Buffer.from([1, 0, 0, 0, 5, 0x7b, 0x7d, 0x7d, 0x7d, 0x7d])),
        rawExchange(srv.port, Buffer.from([3, 0, 0, 0, 1, 0]))
      ])
    )
    expect(answers[0]).toMatch(/BadFrame.*unknown frame type 71/)
    expect(answers[1]).toMatch(/BadFrame.*not JSON/)
    expect(answers[2]).toMatch(/BadFrame.*unexpected window frame/)
    const r = yield* receive(srv.port, w.b, "erin", 2)
    expect(r.digest).toBe(yield* Effect.promise(() => imageDigestPromise(src)))
  }).pipe(Effect.scoped)
)

/** A fake source that answers any request with `reply` (then keeps the connection open). */
const fakeSource = (reply: Buffer) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; server: net.Server; sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((s) => {
        sockets.add(s)
        s.on("error", () => {})
        s.once("data", () => s.write(reply))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ port: (server.address() as net.AddressInfo).port, server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  )

it.live("a source that sends bad frames gets BadFrame, and nothing reaches the final path", () =>
  Effect.gen(function* () {
    const w = workDir("badsrc")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    const start = Buffer.alloc(33)
    start.writeUInt8(2, 0)
    start.writeUInt32BE(28, 1)
    start.writeBigUInt64BE(BigInt(8 * MiB), 5)
    start.writeUInt32BE(WINDOW, 21)
    // A window frame whose run lies outside its window.
    const win = Buffer.alloc(5 + 42 + 12 + 4096)
    win.writeUInt8(3, 0)
    win.writeUInt32BE(42 + 12 + 4096, 1)
    win.writeBigUInt64BE(0n, 5)
    win.writeUInt16BE(1, 13)
    win.writeBigUInt64BE(BigInt(WINDOW), 47)
    win.writeUInt32BE(4096, 55)
    const cases: ReadonlyArray<readonly [Buffer, RegExp]> = [
      [Buffer.from("HTTP/1.0 200 OK\r\n\r\n"), /unknown frame type 72/],
      [Buffer.concat([start, win]), /outside window 0/],
      [Buffer.concat([start, Buffer.from([3, 0xff, 0xff, 0xff, 0xff])]), /at most/]
    ]
    for (const [bytes, reason] of cases) {
      const fake = yield* fakeSource(bytes)
      const e = failureOf(yield* Effect.exit(receive(fake.port, w.b, "frank", 1)))
      expect(e._tag).toBe("BadFrame")
      expect(e.message).toMatch(reason)
      expect(fs.existsSync(path.join(w.b, "frank.nbd"))).toBe(false)
    }
  }).pipe(Effect.scoped)
)

it.live("a missing source image, an unreachable source and a bad login are each a clear error", () =>
  Effect.gen(function* () {
    const w = workDir("missing")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    const srv = yield* source(path.join(w.a, "nobody.nbd"))
    expect(failureOf(yield* Effect.exit(receive(srv.port, w.b, "gina", 1)))._tag).toBe("SourceImageMissing")
    // A port nobody listens on: bound then released.
    const closed = yield* Effect.async<number>((resume) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => resume(Effect.succeed(p)))
      })
    })
    expect(failureOf(yield* Effect.exit(receive(closed, w.b, "gina", 1)))._tag).toBe("PeerUnreachable")
    const bad = failureOf(yield* Effect.exit(receive(srv.port, w.b, "../etc", 1)))
    expect(bad._tag).toBe("InvalidTransfer")
    expect(fs.readdirSync(w.b).filter((n) => n !== ".incoming")).toEqual([])
  }).pipe(Effect.scoped)
)

it.effect("a source that says nothing times out on the Clock", () =>
  Effect.gen(function* () {
    const w = workDir("timeout")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    let accepted = false
    const sockets = new Set<net.Socket>()
    const silent = yield* Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const server = net.createServer((s) => {
          sockets.add(s)
          s.on("error", () => {})
          // The request arrived: the destination now waits for the first frame.
          s.on("data", () => (accepted = true))
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const s of sockets) s.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    const port = (silent.address() as net.AddressInfo).port
    const fiber = yield* Effect.fork(receive(port, w.b, "hank", 1, { idleTimeout: "30 seconds" }))
    // Real I/O needs turns of the event loop; virtual time moves only when told. Bounded.
    for (let i = 0; i < 100_000 && fiber.unsafePoll() === null; i++) {
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      if (accepted) yield* TestClock.adjust("10 seconds")
    }
    const exit = yield* Fiber.await(fiber)
    const e = failureOf(exit)
    expect(e._tag).toBe("TransferTimeout")
    expect(Exit.isFailure(exit)).toBe(true)
  }).pipe(Effect.scoped)
)

it.effect("a source that stops in the middle of a window times out on the Clock (the window pipeline's idle watch)", () =>
  Effect.gen(function* () {
    const w = workDir("timeout-window")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    let accepted = false
    const sockets = new Set<net.Socket>()
    // START of an 8 MiB image, then the first 100 bytes of a window frame, then silence.
    const start = Buffer.alloc(33)
    start.writeUInt8(2, 0)
    start.writeUInt32BE(28, 1)
    start.writeBigUInt64BE(BigInt(8 * MiB), 5)
    start.writeUInt32BE(WINDOW, 21)
    const payload = Buffer.alloc(4096, 1)
    const win = Buffer.concat([encodeWindowHead(0, Buffer.alloc(32), [{ offset: 0, length: 4096 }], 4096), payload]).subarray(0, 100)
    const stalled = yield* Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const server = net.createServer((s) => {
          sockets.add(s)
          s.on("error", () => {})
          s.once("data", () => {
            s.write(Buffer.concat([start, win]))
            accepted = true
          })
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const s of sockets) s.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    const fiber = yield* Effect.fork(receive((stalled.address() as net.AddressInfo).port, w.b, "iris", 1, { idleTimeout: "30 seconds" }))
    for (let i = 0; i < 100_000 && fiber.unsafePoll() === null; i++) {
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      if (accepted) yield* TestClock.adjust("2 seconds")
    }
    const e = failureOf(yield* Fiber.await(fiber))
    expect(e._tag).toBe("TransferTimeout")
    expect(e._tag === "TransferTimeout" && e.phase).toBe("window")
    expect(fs.existsSync(path.join(w.b, "iris.nbd"))).toBe(false)
  }).pipe(Effect.scoped)
)

it.effect("a destination that stops reading times out on the source's Clock (the window pipeline's idle watch)", () =>
  Effect.gen(function* () {
    const w = workDir("timeout-source")
    yield* Effect.addFinalizer(() => Effect.sync(w.remove))
    // More data than the loopback buffers hold, so that the source's writes stay pending.
    const src = path.join(w.a, "jack.nbd")
    writeScatteredImage(src, 96 * MiB, 64 * MiB, 13)
    const outcomes: Array<unknown> = []
    const srv = yield* source(src, { idleTimeout: "30 seconds", onDone: (o) => outcomes.push(o) })
    const token = yield* timeauth.generate(secret, transferMessage("jack", 1, "127.0.0.1"))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const s = net.createConnection({ host: "127.0.0.1", port: srv.port })
        s.on("error", () => {})
        // Never reads: the kernel's buffers fill, then nothing moves.
        s.pause()
        s.write(encodeHello({ login: "jack", generation: 1, from: 0, token }))
        return s
      }),
      (s) => Effect.sync(() => s.destroy())
    )
    expect(client.destroyed).toBe(false)
    for (let i = 0; i < 100_000 && outcomes.length === 0; i++) {
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      // Real I/O first (the source fills the buffers), then the clock moves; a window
      // written meanwhile resets the watch, so this only bounds the test's time.
      if (i > 2000) yield* TestClock.adjust("2 seconds")
    }
    const o = outcomes[0] as { error?: { _tag: string; phase?: string } }
    expect(o.error?._tag).toBe("TransferTimeout")
    expect(o.error?.phase).toBe("window")
  }).pipe(Effect.scoped)
)

it("the frame decoder is total: random and mutated bytes yield frames or a reason, never a throw", () => {
  const seed = seedFrom("HFS_TRANSFER_FUZZ_SEED", "frame decoder fuzz")
  let x = seed || 1
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const valid = encodeHello({ login: "ivy", generation: 1, from: 0, token: "1:ab" })
  for (let i = 0; i < 2000; i++) {
    const d = makeDecoder(["hello", "start", "window", "end", "fail"])
    const base = i % 2 === 0 ? Buffer.from(valid) : Buffer.alloc(1 + Math.floor(rnd() * 200))
    for (let j = 0; j < base.length; j++) if (i % 2 === 1 || rnd() < 0.05) base[j] = Math.floor(rnd() * 256)
    // Fed in random pieces, as TCP delivers.
    let at = 0
    while (at < base.length) {
      const n = 1 + Math.floor(rnd() * 16)
      expect(() => d.push(base.subarray(at, at + n))).not.toThrow()
      at += n
    }
    expect(d.buffered()).toBeLessThanOrEqual(base.length)
  }
})

it("read in place (a read fills at most the parser's target), with window buffers lent and withheld at random, the decoder is total too", () => {
  const seed = seedFrom("HFS_TRANSFER_INPLACE_FUZZ_SEED", "in-place frame parser fuzz")
  let x = seed || 1
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const hello = encodeHello({ login: "ivy", generation: 1, from: 0, token: "1:ab" })
  const payload = Buffer.alloc(8192, 7)
  const window = Buffer.concat([encodeWindowHead(WINDOW, Buffer.alloc(32, 1), [{ offset: WINDOW, length: 4096 }, { offset: WINDOW + 8192, length: 4096 }], payload.length), payload])
  // One window buffer for every frame: nothing is allocated per window frame.
  const lent = Buffer.alloc(WINDOW_MAX_BODY)
  let windows = 0
  for (let i = 0; i < 3000; i++) {
    let lend = rnd() < 0.5
    const p = makeFrameParser(["hello", "start", "window", "end", "fail"], () => (lend ? lent : undefined))
    const kind = i % 3
    const base = kind === 0 ? Buffer.from(hello) : kind === 1 ? Buffer.from(window) : Buffer.alloc(1 + Math.floor(rnd() * 200))
    for (let j = 0; j < base.length; j++) if (kind === 2 || rnd() < (i % 6 < 3 ? 0.02 : 0)) base[j] = Math.floor(rnd() * 256)
    let at = 0
    let bad: string | undefined
    const frames: Array<Frame> = []
    for (let guard = 0; at < base.length && bad === undefined && guard < 100_000; guard++) {
      const t = p.target()
      if (t === undefined) {
        // Withheld: the reader stops; later the consumer lends one.
        lend = true
        continue
      }
      const n = Math.min(t.length, base.length - at, 1 + Math.floor(rnd() * (rnd() < 0.5 ? 16 : 4096)))
      base.copy(t, 0, at, at + n)
      at += n
      // A throw fails the test.
      const r = p.advance(n)
      if (r !== undefined) "_tag" in r ? (bad = r.reason) : frames.push(r)
      if (rnd() < 0.3) lend = rnd() < 0.5
    }
    expect(at === base.length || bad !== undefined).toBe(true)
    expect(p.buffered()).toBeLessThanOrEqual(base.length)
    if (bad !== undefined) expect(p.target()).toBeUndefined()
    for (const f of frames) if (f.type === "window") {
      windows++
      expect(f.payload.buffer).toBe(lent.buffer)
    }
  }
  // The unmutated window frames decoded, in the lent buffer.
  expect(windows).toBeGreaterThan(300)
})

it.live("a socket read in place with one window buffer, given back late (the reader stops and reads on): every frame arrives whole, in order", () =>
  Effect.gen(function* () {
    const count = 40
    const frames = Array.from({ length: count }, (_, k) => {
      const payload = Buffer.alloc(4096 * (1 + (k % 5)), k + 1)
      return Buffer.concat([encodeWindowHead(k * WINDOW, Buffer.alloc(32, k), [{ offset: k * WINDOW, length: payload.length }], payload.length), payload])
    })
    const server = yield* Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const srv = net.createServer((s) => {
          s.on("error", () => {})
          s.end(Buffer.concat([...frames, encodeEnd(count * WINDOW, count, Buffer.alloc(32))]))
        })
        srv.listen(0, "127.0.0.1", () => resume(Effect.succeed(srv)))
      }),
      (srv) => Effect.async<void>((resume) => void srv.close(() => resume(Effect.void)))
    )
    const one = Buffer.from(new SharedArrayBuffer(WINDOW_MAX_BODY))
    let free = true
    const input = frameSocket(["window", "end"], {
      windowBody: () => {
        if (!free) return undefined
        free = false
        return one
      }
    })
    const got = yield* Effect.async<Array<number>, string>((resume) => {
      const socket = net.createConnection({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port, onread: input.onread })
      const reader = input.attach(socket)
      const seen: Array<number> = []
      reader.follow(
        (f) => {
          if (f.type === "end") {
            socket.destroy()
            return resume(Effect.succeed(seen))
          }
          if (f.type !== "window") return resume(Effect.fail(`unexpected ${f.type}`))
          const k = f.offset / WINDOW
          if (!f.payload.equals(frames[k]!.subarray(frames[k]!.length - f.payload.length)) || f.hash[0] !== k) return resume(Effect.fail(`window ${k} damaged`))
          seen.push(k)
          // Given back later: the reader holds the socket meanwhile.
          setImmediate(() => {
            free = true
            reader.wake()
          })
        },
        (end) => resume(Effect.fail(JSON.stringify(end)))
      )
    })
    expect(got).toEqual(Array.from({ length: count }, (_, k) => k))
  }).pipe(Effect.scoped)
)
