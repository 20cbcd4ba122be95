import { Effect, Either, Redacted } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import pg from "pg"
import { afterAll, expect, it } from "vitest"
import { imageDigestPromise } from "../../src/actors/hfs/transfer/image-digest.js"
import { HfsRpcs } from "../../src/protocols/hfs.js"
import { makeRpcTcpClient } from "../../src/runtime/rpc-tcp.js"
import { mulberry32 } from "../support/random.js"
import { createTestDatabase } from "../support/pg.js"
import { fsck, makeSkeleton, run, tempDir } from "./support/images.js"
import { faultProfile, hfsSecret, hostOf, machineOf } from "./faults/setup.js"
import { seedFrom } from "./transfer/images.js"
import { bundleChild, checkout } from "./support/bundle.js"

// Migration fault suite: two HFS as real processes (faults/hfs-child.ts: the node's HFS
// subsystem on 127.0.11.1 and .2, a real PostgreSQL), one home of 256 MiB with scattered data
// moving from one to the other and back; each run SIGKILLs the source or the destination at a
// seeded point of a migration (a delay drawn against the measured migration time, the moment
// the row turns migrating, or once the destination journaled verified windows), starts the
// killed one again and logs in again until the home is served. After every run: the location
// row names the destination, ready; the other side has no copy left; the image digest is the
// one of the source's fenced image (no writes happen, so it never changes); e2fsck -fn clean
// (every 10th run and the last). Only the killed side restarts, from a spare loaded in advance
// (the child is bundled once with esbuild, and one spare per HFS waits loaded: a restart costs
// the layer's start, ~0.1 s, not node's and the bundle's ~0.5 s at load); ~40 MiB of data keep
// one journal checkpoint (32 MiB) in every copy while a migration takes ~0.2 s.
//   HFS_FAULTS_HOST: the addresses (faults/setup.ts), to run beside another lane's run.
//   HFS_MIGRATION_KILL_RUNS (default 50), HFS_MIGRATION_KILL_SEED (replay).

const RUNS = Number(process.env["HFS_MIGRATION_KILL_RUNS"] ?? "50")
const LOGIN = "mover"
const MiB = 1024 * 1024

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const c of children) c.kill("SIGKILL")
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Hfs {
  child: ChildProcess
  exited: Promise<void>
}

const spawnHfs = (script: string, id: number, url: string, exportBase: string, skeleton: string, standby: boolean) => {
  const child = spawn(process.execPath, [script, String(id), url, exportBase, skeleton, ...(standby ? ["standby"] : [])], {
    cwd: checkout,
    stdio: [standby ? "pipe" : "ignore", "ignore", "pipe"]
  })
  children.add(child)
  const exited = new Promise<void>((r) => child.once("exit", () => (children.delete(child), r())))
  const err = { text: "" }
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err.text += d))
  const until = async (line: RegExp) => {
    for (let i = 0; !line.test(err.text); i++) {
      if (child.exitCode !== null || i > 1200) throw new Error(`hfs${id} did not start: ${err.text.slice(-2000)}`)
      await sleep(i < 40 ? 5 : 25)
    }
  }
  return { child, exited, until }
}

const startHfs = async (script: string, id: number, url: string, exportBase: string, skeleton: string): Promise<Hfs> => {
  const h = spawnHfs(script, id, url, exportBase, skeleton, false)
  await h.until(/^ready$/m)
  return h
}

/** A loaded spare of HFS `id` (node started, bundle loaded), started by `go`. */
const standbyHfs = (script: string, id: number, url: string, exportBase: string, skeleton: string) => {
  const h = spawnHfs(script, id, url, exportBase, skeleton, true)
  const loaded = h.until(/^loaded$/m)
  loaded.catch(() => undefined)
  return {
    child: h.child,
    go: async (): Promise<Hfs> => {
      await loaded
      h.child.stdin!.write("go\n")
      await h.until(/^ready$/m)
      return h
    }
  }
}

/** getHome of the user on the machine of HFS `hfs`, over that HFS's rpc port; any failure is a Left. */
const getHome = (hfs: number): Promise<Either.Either<unknown, unknown>> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(makeRpcTcpClient(HfsRpcs, { host: hostOf[hfs]!, port: faultProfile.rpc_port, secret: hfsSecret }), (c) =>
        c.getHome({ login: LOGIN, hostname: machineOf[hfs]! })
      )
    ).pipe(Effect.timeout("60 seconds"), Effect.either)
  ).catch((e: unknown) => Either.left(e))

/** A 256 MiB ext4 home holding ~40 MiB of random data in sparse files scattered over it (one journal checkpoint of a transfer, 32 MiB, then a tail). */
const scatteredHome = async (root: string, seed: number): Promise<string> => {
  const rand = mulberry32(seed)
  const staging = path.join(root, "staging")
  await fs.mkdir(staging)
  for (let f = 0; f < 28; f++) {
    const h = await fs.open(path.join(staging, `f${f}.bin`), "w")
    try {
      const size = 1 * MiB + Math.floor(rand() * 5 * MiB)
      await h.truncate(size)
      for (let k = 0; k < 4; k++) {
        const n = 4096 * (1 + Math.floor(rand() * 180))
        const buf = Buffer.allocUnsafe(n)
        for (let i = 0; i < n; i += 4) buf.writeUInt32LE((rand() * 2 ** 32) >>> 0, i)
        await h.write(buf, 0, n, Math.floor(rand() * (size - n)))
      }
    } finally {
      await h.close()
    }
  }
  const image = path.join(root, "scattered.img")
  await fs.writeFile(image, "")
  await fs.truncate(image, 256 * MiB)
  const mk = await run("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", "-d", staging, "-E", "root_owner=12000:10000", image])
  if (mk.code !== 0) throw new Error(mk.stderr)
  return image
}

const exists = (p: string) => fs.access(p).then(() => true, () => false)

it(
  "SIGKILL of the source or the destination HFS at a seeded point of a migration: no home lost, never on two HFS, digest kept, e2fsck clean",
  async () => {
    const seed = seedFrom("HFS_MIGRATION_KILL_SEED", "hfs migration kill suite")
    const rand = mulberry32(seed)
    const root = await tempDir("hfs-faults-")
    await fs.chmod(root, 0o755)
    const dbUrl = Redacted.value(await Effect.runPromise(createTestDatabase))
    // connected once the first HFS has migrated it
    const db = new pg.Client({ connectionString: dbUrl })
    const { script, remove: removeBundle } = await bundleChild("hfs-child", "test/hfs/faults/hfs-child.ts")
    const skeleton = await makeSkeleton(root)
    const exportBase = path.join(root, "export")
    const imageOf = (hfs: number) => path.join(exportBase, `hfs${hfs}`, `${LOGIN}.nbd`)
    const counts = { runs: 0, killsOfSource: 0, killsOfDestination: 0, killsOfA: 0, killsOfB: 0, retriesWithJournal: 0, retriesFromScratch: 0, finishedBeforeKill: 0, homesLost: 0, killPoints: { delay: 0, handOver: 0, journaled: 0 } }
    try {
      // the first HFS migrates the database; the second starts after it
      const hfs: Array<Hfs> = []
      hfs[0] = await startHfs(script, 0, dbUrl, exportBase, skeleton)
      hfs[1] = await startHfs(script, 1, dbUrl, exportBase, skeleton)
      await db.connect()
      const spare = [0, 1].map((id) => standbyHfs(script, id, dbUrl, exportBase, skeleton))
      const row = async () => (await db.query("SELECT hfs, generation, state FROM hfs_location WHERE login = $1", [LOGIN])).rows[0] as { hfs: number; generation: number; state: string } | undefined

      const created = await getHome(0)
      if (Either.isLeft(created)) throw new Error(`getHome on hfs0: ${JSON.stringify(created.left)}`)
      // the home's content: scattered data in files (no client attached: written in place)
      const scattered = await scatteredHome(root, seed)
      const cp = await run("cp", ["--sparse=always", scattered, imageOf(0)])
      expect(cp.code, cp.stderr).toBe(0)
      const digest = await imageDigestPromise(imageOf(0))

      // two migrations, unharmed (there and back): how long one takes here
      let migrationMs = 0
      for (const to of [1, 0]) {
        const t0 = performance.now()
        const warm = await getHome(to)
        if (Either.isLeft(warm)) throw new Error(`getHome on hfs${to}: ${JSON.stringify(warm.left)}`)
        migrationMs = performance.now() - t0
        expect(await imageDigestPromise(imageOf(to))).toBe(digest)
      }
      console.log(`hfs migration kill suite: one migration of the 256 MiB home takes ${migrationMs.toFixed(0)} ms`)

      let at = 0
      // where the suite's time goes (ms summed over the runs), printed with the counts
      const phase: Record<string, number> = {}
      let tp = performance.now()
      const mark = (k: string) => {
        const n = performance.now()
        phase[k] = Math.round((phase[k] ?? 0) + n - tp)
        tp = n
      }
      for (let i = 0; i < RUNS; i++) {
        const to = 1 - at
        const killSource = rand() < 0.5
        const victim = killSource ? at : to
        // where to kill: after a random delay, at the hand-over (the row turns migrating), or
        // once the destination journaled verified windows (then a random part of a window)
        const point = rand()
        const delay = rand() * migrationMs * (point < 0.4 ? 1.2 : 0.05)
        const incoming = path.join(exportBase, `hfs${to}`, ".incoming")
        let finished = false
        const call = getHome(to).finally(() => (finished = true))
        const started = performance.now()
        mark("pre")
        const reached = async (): Promise<boolean> => {
          if (point < 0.4) return true
          if (point < 0.7) return (await row())?.state === "migrating"
          const names = await fs.readdir(incoming).catch(() => [] as Array<string>)
          for (const n of names) if (n.endsWith(".journal") && (await fs.stat(path.join(incoming, n)).then((st) => st.size, () => 0)) > 64) return true
          return false
        }
        while (!finished && !(await reached()) && performance.now() - started < migrationMs * 4) await sleep(2)
        counts.killPoints[point < 0.4 ? "delay" : point < 0.7 ? "handOver" : "journaled"]++
        await sleep(delay)
        const done = finished
        if (done) counts.finishedBeforeKill++
        hfs[victim]!.child.kill("SIGKILL")
        await hfs[victim]!.exited
        killSource ? counts.killsOfSource++ : counts.killsOfDestination++
        victim === 0 ? counts.killsOfA++ : counts.killsOfB++
        mark("toKill")
        await call
        mark("call")
        hfs[victim] = await spare[victim]!.go()
        spare[victim] = standbyHfs(script, victim, dbUrl, exportBase, skeleton)
        mark("restart")
        // what the next login finds on the destination: a journal to resume from, or nothing
        const journals = (await fs.readdir(incoming).catch(() => [] as Array<string>)).filter((n) => n.startsWith(`${LOGIN}.`) && n.endsWith(".journal"))
        let resumable = false
        for (const j of journals) if ((await fs.stat(path.join(incoming, j))).size > 64) resumable = true
        let served = await getHome(to)
        let retries = 0
        for (let k = 0; k < 400 && Either.isLeft(served); k++) {
          retries++
          await sleep(25)
          served = await getHome(to)
        }
        if (Either.isLeft(served)) {
          counts.homesLost++
          throw new Error(`run ${i} (seed ${seed}): the home is not served by hfs${to} after the restart: ${JSON.stringify(served.left)}`)
        }
        mark("serve")
        phase["retries"] = (phase["retries"] ?? 0) + retries
        if (!done) resumable ? counts.retriesWithJournal++ : counts.retriesFromScratch++
        const r = await row()
        expect(r, `run ${i} (seed ${seed})`).toMatchObject({ hfs: to, state: "ready" })
        expect(await imageDigestPromise(imageOf(to)), `run ${i} (seed ${seed}): digest`).toBe(digest)
        // never on two HFS: the old side's copy goes once the row moved (retention 0; told at
        // the commit, or found by its sweep when it was killed before hearing it)
        for (let k = 0; k < 400 && (await exists(imageOf(at))); k++) await sleep(10)
        mark("digest+old")
        expect(await exists(imageOf(at)), `run ${i} (seed ${seed}): copy left on hfs${at}`).toBe(false)
        if (i % 10 === 9 || i === RUNS - 1) expect((await fsck(imageOf(to))).code, `run ${i}: e2fsck`).toBe(0)
        mark("fsck")
        counts.runs++
        at = to
      }
      console.log(`hfs migration kill suite: time per phase (ms, ${RUNS} runs): ${JSON.stringify(phase)}`)
    } finally {
      console.log(`hfs migration kill suite (seed ${seed}): ${JSON.stringify(counts)}`)
      for (const c of children) c.kill("SIGKILL")
      await db.end().catch(() => undefined)
      await fs.rm(root, { recursive: true, force: true })
      await removeBundle()
    }
    expect(counts.homesLost).toBe(0)
    expect(counts.runs).toBe(RUNS)
  },
  600_000
)
