// Home file servers: new-home latency (getHome of a user without a home: image + row + grant)
// against a bare `mke2fs -d` of the same skeleton into a sparse file of the same size (the
// peer, run in the same process tree), then 100 concurrent getHome for 100 different users on
// one HFS (new homes, then re-grants to another machine). Embedded PostgreSQL, fsync on.
// Then a migration of a 2 GiB home holding ~200 MiB between two HFS of this process (each on
// its own address, 127.0.11.1 and .2: real rpc ports and transfer listeners) against
// `nbdcopy --flush` of the same image between two local `nbdkit file` servers.
//   npm run bench:hfs            (PROLO_BENCH_N=… new homes for the latency figures, default 40)
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { HfsServerProfile } from "../src/actors/hfs/config.js"
import { rpcPorts } from "../src/actors/hfs/layer.js"
import { imageDigestPromise } from "../src/actors/hfs/transfer/image-digest.js"
import { HfsDirectory, type HfsMachine, type HfsUser } from "../src/actors/hfs/directory.js"
import { Locations } from "../src/actors/hfs/locations.js"
import { Hfs } from "../src/actors/hfs/service.js"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { Metrics } from "../src/runtime/metrics.js"
import { RootSupervisor } from "../src/runtime/supervisor.js"
import { allocatedBytes, writeScatteredImage } from "../test/hfs/transfer/images.js"
import { startNbdServer, timedNbdcopy } from "./nbd-peer.js"
import { freePort } from "./support.js"
import { connect } from "../src/store/database.js"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"

const N = Number(process.env.PROLO_BENCH_N ?? 40)
const QUOTA = "2G"

const sh = (cmd: string, args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) =>
    execFile(cmd, [...args], (e, _o, stderr) => (e === null ? resolve() : reject(new Error(`${cmd}: ${stderr}`))))
  )

const pct = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN
}
const fmt = (ms: number) => `${ms.toFixed(1)} ms`

// A skeleton shaped like /export/skeleton: a few hundred dotfiles and configs, ~2 MiB.
const makeSkeleton = async (dir: string) => {
  for (const app of ["awesome", "i3", "xfce4", "plasma", "emacs.d", "vim", "hexchat", "weechat"]) {
    const d = path.join(dir, `.config`, app)
    await fs.mkdir(d, { recursive: true })
    for (let i = 0; i < 30; i++) await fs.writeFile(path.join(d, `file${i}.conf`), `# ${app} ${i}\n`.repeat(200))
  }
  await fs.writeFile(path.join(dir, ".Xresources"), "XTerm*faceName: monospace\n")
  await fs.writeFile(path.join(dir, ".bashrc"), "# prologin\n")
}

const machines: Array<HfsMachine> = [
  { hostname: "pas-r01p01", ip: "127.0.0.1", hfs: 0, aliases: [] },
  { hostname: "pas-r01p02", ip: "127.0.0.2", hfs: 0, aliases: [] }
]
const users: Array<HfsUser> = [
  ...Array.from({ length: N + 100 }, (_, i): HfsUser => ({ login: `u${i}`, uid: 10000 + i, group: "user" })),
  { login: "mover", uid: 20000, group: "user" }
]

// The migration pair (lane hfs-perf's loopback addresses) and a client machine of each.
const pairMachines: Array<HfsMachine> = [
  { hostname: "rhfs0", ip: "127.0.11.1", hfs: 0, aliases: ["hfs0"] },
  { hostname: "rhfs1", ip: "127.0.11.2", hfs: 1, aliases: ["hfs1"] },
  { hostname: "pas-m0", ip: "127.0.11.10", hfs: 0, aliases: [] },
  { hostname: "pas-m1", ip: "127.0.11.11", hfs: 1, aliases: [] }
]
const MIGRATION_ROUNDS = Number(process.env.ROUNDS ?? 3)

/** nbdcopy --flush of `src` between two local nbdkit file servers (read-only source → sparse copy). */
const nbdcopyPeer = async (src: string, dst: string): Promise<number> => {
  await fs.rm(dst, { force: true })
  await fs.writeFile(dst, "")
  await fs.truncate(dst, (await fs.stat(src)).size)
  const [p1, p2] = [await freePort(), await freePort()]
  const a = await startNbdServer(`nbdkit -f -r -i 127.0.0.1 -p ${p1} file file=${src}`, p1, "")
  try {
    const b = await startNbdServer(`nbdkit -f -i 127.0.0.1 -p ${p2} file file=${dst}`, p2, "")
    try {
      return await timedNbdcopy(["--flush", a.uri, b.uri])
    } finally {
      await b.stop()
    }
  } finally {
    await a.stop()
  }
}

const program = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-bench-hfs-"))
      await fs.chmod(dir, 0o755)
      return dir
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )
  const skeleton = path.join(root, "skeleton")
  yield* Effect.promise(() => makeSkeleton(skeleton))
  const pg = yield* startEmbeddedPostgres({ dataDir: path.join(root, "db") })
  const profile = Schema.decodeUnknownSync(HfsServerProfile)({
    export_base: path.join(root, "export"),
    skeleton,
    bind: { "0": "127.0.0.1" },
    nbd_port: 0,
    transfer_port: 0,
    free_reserve: 0,
    quota: { user: QUOTA }
  })
  const layer = Hfs.layer({ ids: [0], profile, secret: Redacted.make("bench-hfs-secret") }).pipe(
    Layer.provide(RootSupervisor.layer),
    Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer)),
    Layer.provide(HfsDirectory.fromRecords(machines, users)),
    Layer.provide(Locations.sql({ contest: false })),
    Layer.provide(connect(pg.url("postgres")))
  )
  const hfs = Context.get(yield* Layer.build(layer), Hfs)
  yield* hfs.instance(0)

  // Interleaved, so that load changes hit both alike.
  const peerDir = path.join(root, "peer")
  yield* Effect.promise(() => fs.mkdir(peerDir))
  const ours: Array<number> = []
  const peer: Array<number> = []
  for (let i = 0; i < N; i++) {
    const t0 = performance.now()
    yield* hfs.getHome(`u${i}`, "pas-r01p01")
    ours.push(performance.now() - t0)
    const file = path.join(peerDir, `u${i}.img`)
    const t1 = performance.now()
    yield* Effect.promise(async () => {
      await sh("truncate", ["-s", QUOTA, file])
      await sh("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", "-d", skeleton, "-E", "lazy_itable_init=1,lazy_journal_init=1", file])
    })
    peer.push(performance.now() - t1)
    yield* Effect.promise(() => fs.rm(file))
  }
  console.log(`new home (${QUOTA}, ${N} users): p50 ${fmt(pct(ours, 50))}, p99 ${fmt(pct(ours, 99))}`)
  console.log(`peer, bare truncate + mke2fs -d of the same skeleton: p50 ${fmt(pct(peer, 50))}, p99 ${fmt(pct(peer, 99))}`)
  console.log(`ratio: p50 ${(pct(ours, 50) / pct(peer, 50)).toFixed(2)}x, p99 ${(pct(ours, 99) / pct(peer, 99)).toFixed(2)}x`)

  const batch = Array.from({ length: 100 }, (_, i) => `u${N + i}`)
  const t0 = performance.now()
  yield* Effect.forEach(batch, (login) => hfs.getHome(login, "pas-r01p01"), { concurrency: "unbounded", discard: true })
  const created = performance.now() - t0
  const t1 = performance.now()
  yield* Effect.forEach(batch, (login) => hfs.getHome(login, "pas-r01p02"), { concurrency: "unbounded", discard: true })
  const regranted = performance.now() - t1
  const t2 = performance.now()
  yield* Effect.forEach(batch, (login) => hfs.getHome(login, "pas-r01p02"), { concurrency: "unbounded", discard: true })
  const again = performance.now() - t2
  console.log(`100 concurrent getHome, 100 users, one HFS: new homes ${fmt(created)}, re-grants to another machine ${fmt(regranted)}, same machine again ${fmt(again)}`)

  // Migration: hfs0 and hfs1 of one more HFS node in this process, same database.
  const secret = Redacted.make("bench-hfs-secret")
  const pairBase = path.join(root, "export-pair")
  const pairProfile = Schema.decodeUnknownSync(HfsServerProfile)({
    export_base: pairBase,
    skeleton,
    bind: { "0": "127.0.11.1", "1": "127.0.11.2" },
    rpc_port: 21300,
    transfer_port: 21301,
    nbd_port: 21302,
    free_reserve: 0,
    live_grant_seconds: 0,
    retention: { count: 0 },
    quota: { user: QUOTA }
  })
  const pairLayer = rpcPorts({ ids: [0, 1], port: 21300, client: secret, status: Redacted.make("bench-hfs-status") }).pipe(
    Layer.provideMerge(Hfs.layer({ ids: [0, 1], profile: pairProfile, secret })),
    Layer.provide(RootSupervisor.layer),
    Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer)),
    Layer.provide(HfsDirectory.fromRecords(pairMachines, users)),
    Layer.provide(Locations.sql({ contest: false })),
    Layer.provide(connect(pg.url("postgres")))
  )
  const pairCtx = yield* Layer.build(pairLayer)
  const pair = Context.get(pairCtx, Hfs)
  const metrics = Context.get(pairCtx, Metrics)
  yield* pair.instance(0)
  yield* pair.instance(1)
  for (let i = 0; i < 200; i++) {
    if ((yield* pair.status).every((x) => x.rpcPort !== null)) break
    yield* Effect.sleep("10 millis")
  }
  yield* pair.getHome("mover", "pas-m0")
  const home0 = path.join(pairBase, "hfs0", "mover.nbd")
  // ~200 MiB scattered over the 2 GiB image (written in place: no client is attached)
  yield* Effect.sync(() => writeScatteredImage(home0, 2 * 1024 ** 3, 210 * 1024 * 1024, 1))
  const allocated = allocatedBytes(home0)
  const digest = yield* Effect.promise(() => imageDigestPromise(home0))
  const wireTotal = Effect.map(metrics.render, ({ body }) =>
    body
      .split("\n")
      .filter((l) => l.startsWith("prolo_hfs_migration_wire_bytes_total{"))
      .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0)
  )
  let best = { ours: Infinity, peer: Infinity, wire: 0 }
  let at = 0
  for (let round = 0; round < MIGRATION_ROUNDS; round++) {
    const to = 1 - at
    const before = yield* wireTotal
    const t0 = performance.now()
    yield* pair.getHome("mover", to === 1 ? "pas-m1" : "pas-m0")
    const seconds = (performance.now() - t0) / 1000
    const wire = (yield* wireTotal) - before
    const moved = path.join(pairBase, `hfs${to}`, "mover.nbd")
    if ((yield* Effect.promise(() => imageDigestPromise(moved))) !== digest) throw new Error("the migrated image's digest differs from the source's")
    const peer = yield* Effect.promise(() => nbdcopyPeer(moved, path.join(root, "nbdcopy-dst.img")))
    console.error(`[bench:hfs] migration round ${round + 1}: ours ${seconds.toFixed(3)} s (hfs${at} → hfs${to}), nbdcopy ${peer.toFixed(3)} s`)
    best = { ours: Math.min(best.ours, seconds), peer: Math.min(best.peer, peer), wire }
    at = to
  }
  console.log(
    `migration of a 2 GiB home holding ${(allocated / 1024 ** 2).toFixed(0)} MiB (best of ${MIGRATION_ROUNDS}, getHome on the other HFS's machine: hand-over, transfer, commit, grant): ` +
      `${best.ours.toFixed(3)} s; peer nbdcopy --flush between two nbdkit file servers ${best.peer.toFixed(3)} s; ratio ${(best.ours / best.peer).toFixed(2)}x (goal <= 1.2x); ` +
      `bytes on the wire / allocated ${best.wire} / ${allocated} = ${(best.wire / allocated).toFixed(4)} (goal <= 1.05)`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
