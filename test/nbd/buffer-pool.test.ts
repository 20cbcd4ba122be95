import { describe, expect, it } from "vitest"
import { makeBufferPool } from "../../src/nbd/buffer-pool.js"

const KiB = 1024
const MiB = 1024 * KiB

// The pool's budget is shared by every connection: what it hands out plus what it keeps
// for reuse never exceeds it, waiters are served in order, and nothing waits forever once
// the buffers come back.
describe("nbd buffer pool budget", () => {
  it("hands out up to its budget, then makes takers wait in line", () => {
    const pool = makeBufferPool(4 * MiB)
    const a = pool.tryTake(MiB)
    const b = pool.tryTake(3 * MiB) // class 4 MiB: does not fit beside a
    expect(a?.length).toBe(MiB)
    expect(b).toBeUndefined()
    const c = pool.tryTake(2 * MiB) as Buffer
    const d = pool.tryTake(MiB) as Buffer
    expect(pool.stats()).toMatchObject({ heldBytes: 4 * MiB, retainedBytes: 0 })
    expect(pool.tryTake(4 * KiB)).toBeUndefined()

    const got: Array<string> = []
    pool.waitFor(2 * MiB, () => got.push("big"))
    pool.waitFor(4 * KiB, () => got.push("small"))
    // A small take may not overtake the large one waiting, though it would fit.
    pool.give(d)
    expect(got).toEqual([])
    expect(pool.tryTake(4 * KiB)).toBeUndefined()
    pool.give(a as Buffer)
    expect(got).toEqual(["big"])
    expect(pool.stats()).toMatchObject({ heldBytes: 4 * MiB, retainedBytes: 0, waiting: 1 })
    pool.give(c)
    expect(got).toEqual(["big", "small"])
    expect(pool.stats()).toMatchObject({ heldBytes: 2 * MiB + 4 * KiB, waiting: 0, peakBytes: 4 * MiB })
  })

  it("keeps free buffers only within the budget and drops them to make room", () => {
    const pool = makeBufferPool(2 * MiB)
    const bufs = [pool.tryTake(MiB) as Buffer, pool.tryTake(MiB) as Buffer]
    for (const b of bufs) pool.give(b)
    expect(pool.stats()).toMatchObject({ heldBytes: 0, retainedBytes: 2 * MiB })
    // Reused, not allocated again.
    expect(pool.tryTake(MiB)).toBe(bufs[1])
    // A 2 MiB class does not fit beside the held 1 MiB buffer; a 1 MiB one does, by
    // dropping the free buffer it would not reuse... which is the same class here.
    const small = pool.tryTake(64 * KiB) as Buffer
    expect(pool.stats()).toMatchObject({ heldBytes: MiB + 64 * KiB, retainedBytes: 0 })
    pool.give(small)
    expect(pool.stats().heldBytes + pool.stats().retainedBytes).toBeLessThanOrEqual(2 * MiB)
    expect(pool.trim()).toBe(64 * KiB)
    expect(pool.stats().retainedBytes).toBe(0)
  })

  it("a request larger than the whole budget runs alone, after those before it, and does not block the rest forever", () => {
    const pool = makeBufferPool(MiB)
    const a = pool.tryTake(512 * KiB) as Buffer
    const got: Array<Buffer> = []
    pool.waitFor(4 * MiB, (b) => got.push(b))
    pool.waitFor(4 * KiB, (b) => got.push(b))
    expect(got).toEqual([])
    pool.give(a)
    expect(got.map((b) => b.length)).toEqual([4 * MiB])
    pool.give(got[0] as Buffer)
    expect(got.map((b) => b.length)).toEqual([4 * MiB, 4 * KiB])
    // The oversized buffer is not kept.
    expect(pool.stats()).toMatchObject({ heldBytes: 4 * KiB, retainedBytes: 0 })
  })

  it("a cancelled wait lets those behind it through", () => {
    const pool = makeBufferPool(MiB)
    const a = pool.tryTake(MiB) as Buffer
    const got: Array<number> = []
    const cancel = pool.waitFor(MiB, () => got.push(1))
    pool.waitFor(4 * KiB, () => got.push(2))
    pool.give(a)
    expect(got).toEqual([1])
    cancel() // already granted: no effect
    const pool2 = makeBufferPool(MiB)
    const b = pool2.tryTake(512 * KiB) as Buffer
    const cancel2 = pool2.waitFor(MiB, () => got.push(3))
    pool2.waitFor(4 * KiB, () => got.push(4))
    expect(got).toEqual([1])
    cancel2()
    expect(got).toEqual([1, 4])
    pool2.give(b)
  })

  it("random takes, waits, gives and cancels: never over budget, nobody left waiting", () => {
    const seed = Number(process.env["NBD_POOL_SEED"] ?? Date.now() % 1_000_000)
    console.log(`buffer pool random test seed=${seed} (replay: NBD_POOL_SEED=${seed})`)
    let state = seed >>> 0 || 1
    const rnd = () => {
      // xorshift32
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      return (state >>> 0) / 2 ** 32
    }
    const budget = 4 * MiB
    const pool = makeBufferPool(budget)
    const out: Array<Buffer> = []
    const waits: Array<{ cancel: () => void; done: boolean }> = []
    let biggestOut = 0
    const check = () => {
      const s = pool.stats()
      // Only a lone buffer above the budget may take the pool past it.
      if (s.heldBytes > budget) expect(out.length).toBe(1)
      else expect(s.heldBytes + s.retainedBytes).toBeLessThanOrEqual(budget)
      biggestOut = Math.max(biggestOut, s.heldBytes)
    }
    const size = () => (rnd() < 0.05 ? 8 * MiB : Math.floor(2 ** (12 + rnd() * 10)))
    for (let i = 0; i < 5000; i++) {
      const r = rnd()
      if (r < 0.35) {
        const b = pool.tryTake(size())
        if (b !== undefined) out.push(b)
      } else if (r < 0.6) {
        const w = { cancel: () => {}, done: false }
        w.cancel = pool.waitFor(size(), (b) => {
          w.done = true
          out.push(b)
        })
        waits.push(w)
      } else if (r < 0.95 && out.length > 0) {
        pool.give(out.splice(Math.floor(rnd() * out.length), 1)[0] as Buffer)
      } else if (waits.length > 0) {
        waits.splice(Math.floor(rnd() * waits.length), 1)[0]?.cancel()
      }
      check()
    }
    // Give everything back, including what that grants, until nothing is out.
    for (let i = 0; out.length > 0; i++) {
      expect(i).toBeLessThan(100_000)
      pool.give(out.shift() as Buffer)
      check()
    }
    expect(pool.stats()).toMatchObject({ heldBytes: 0, waiting: 0 })
    expect(biggestOut).toBeGreaterThan(0)
  })
})
