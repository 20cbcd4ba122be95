import { expect, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { WINDOW } from "../../../src/actors/hfs/transfer/digest.js"
import { imageDigestPromise } from "../../../src/actors/hfs/transfer/image-digest.js"
import { readProgress } from "../../../src/actors/hfs/transfer/receive.js"
import { mulberry32 } from "../../support/random.js"
import { killAll, spawnNode, type Spawned, waitForOutput } from "../../e2e/node-process.js"
import { bundleChild } from "../support/bundle.js"
import { seedFrom, writeScatteredImage } from "./images.js"
import { MiB, receive, sameBytes, secret, source, workDir } from "./support.js"

// Kill either side of a transfer (SIGKILL of a real process) at a random window; the next
// attempt resumes from the last window the destination verified and journaled, and the home
// arrives identical. The child is bundled once (support/bundle.ts: no tsx in the child and its
// hash threads) and the seeded scattered image is written once, each run killing at its own
// seeded window of it. HFS_TRANSFER_KILL_RUNS sets the number of runs (20 by default).

const RUNS = Number(process.env.HFS_TRANSFER_KILL_RUNS ?? "20")

const child = (script: string, args: ReadonlyArray<string>): Spawned =>
  spawnNode([script, ...args], { HFS_TRANSFER_SECRET: Redacted.value(secret) })

/** Kills `c` once it reported window number `k` (or finished first); resolves when it is gone. */
const killAtWindow = async (c: Spawned, k: number): Promise<boolean> => {
  const reached = await new Promise<boolean>((resolve) => {
    const check = () => {
      const n = (c.stderr.match(/^window /gm) ?? []).length
      if (n > k) return done(true)
      if (/^(done|failed) /m.test(c.stderr)) return done(false)
    }
    const done = (v: boolean) => {
      c.child.stderr?.off("data", check)
      resolve(v)
    }
    c.child.stderr?.on("data", check)
    void c.exited.then(() => done(false))
    check()
  })
  c.child.kill("SIGKILL")
  await c.exited
  return reached
}

it.live(
  `SIGKILL of the source or the destination at a random window: the retry resumes from the last verified window (${RUNS} runs)`,
  () =>
    Effect.gen(function* () {
      yield* Effect.addFinalizer(() => Effect.promise(killAll))
      const seed = seedFrom("HFS_TRANSFER_KILL_SEED", "transfer kill suite")
      const rand = mulberry32(seed)
      const counts = { source: 0, destination: 0, killedMidway: 0, finishedFirst: 0, resumedAfterZero: 0 }
      const bundle = yield* Effect.acquireRelease(
        Effect.promise(() => bundleChild("hfs-transfer-child", "test/hfs/transfer/child.ts")),
        (b) => Effect.promise(b.remove)
      )
      const images = workDir("kill-image")
      yield* Effect.addFinalizer(() => Effect.sync(images.remove))
      const src = path.join(images.a, "kim.nbd")
      writeScatteredImage(src, 64 * MiB + 3000, 20 * MiB, seed)
      const expected = yield* Effect.promise(() => imageDigestPromise(src))
      // Windows that hold data: the kill lands on one of them.
      let dataWindows = 0
      {
        const fd = fs.openSync(src, "r")
        const size = fs.fstatSync(fd).size
        const b = Buffer.alloc(WINDOW)
        for (let o = 0; o < size; o += WINDOW) {
          const n = fs.readSync(fd, b, 0, Math.min(WINDOW, size - o), o)
          if (b.subarray(0, n).some((x) => x !== 0)) dataWindows++
        }
        fs.closeSync(fd)
      }
      for (let run = 0; run < RUNS; run++) {
        const w = workDir(`kill${run}`)
        yield* Effect.gen(function* () {
          const k = Math.floor(rand() * dataWindows)
          const killSource = rand() < 0.5
          const generation = 1 + run
          if (killSource) {
            counts.source++
            const c = child(bundle.script, ["source", src])
            const port = Number((yield* Effect.promise(() => waitForOutput(c, /listening (\d+)/, 60_000)))[1])
            const first = yield* Effect.fork(Effect.exit(receive(port, w.b, "kim", generation, { checkpointBytes: 1 })))
            const reached = yield* Effect.promise(() => killAtWindow(c, k))
            const exit = yield* first.await.pipe(Effect.flatten)
            if (Exit.isSuccess(exit)) counts.finishedFirst++
            else {
              expect(exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("TransferInterrupted")
              if (reached) counts.killedMidway++
            }
          } else {
            counts.destination++
            const srv = yield* source(src)
            const c = child(bundle.script, ["dest", String(srv.port), "kim", String(generation), w.b])
            const reached = yield* Effect.promise(() => killAtWindow(c, k))
            if (/^done /m.test(c.stderr)) counts.finishedFirst++
            else if (reached) counts.killedMidway++
          }
          const final = path.join(w.b, "kim.nbd")
          if (fs.existsSync(final)) {
            // Finished before the kill landed: the result must already be whole.
            expect(yield* Effect.promise(() => imageDigestPromise(final))).toBe(expected)
            return
          }
          const progress = yield* Effect.promise(() => readProgress(w.b, "kim", generation))
          if (progress > 0) counts.resumedAfterZero++
          const srv = yield* source(src)
          const r = yield* receive(srv.port, w.b, "kim", generation)
          expect(r.resumedFrom).toBe(progress)
          expect(r.digest).toBe(expected)
          expect(yield* Effect.promise(() => sameBytes(src, final))).toBe(true)
        }).pipe(Effect.scoped, Effect.ensuring(Effect.sync(w.remove)))
      }
      console.log(`transfer kill suite: ${JSON.stringify(counts)}`)
      // A suite where every kill came too late would prove nothing.
      expect(counts.killedMidway).toBeGreaterThan(RUNS / 4)
      expect(counts.resumedAfterZero).toBeGreaterThan(0)
    }).pipe(Effect.scoped),
  600_000
)

