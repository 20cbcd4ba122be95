// Home file servers: new-home latency (getHome of a user without a home: image + row + grant)
// against a bare `mke2fs -d` of the same skeleton into a sparse file of the same size (the
// peer, run in the same process tree), then 100 concurrent getHome for 100 different users on
// one HFS (new homes, then re-grants to another machine). Embedded PostgreSQL, fsync on.
//   npm run bench:hfs            (PROLO_BENCH_N=… new homes for the latency figures, default 40)
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { HfsServerProfile } from "../src/actors/hfs/config.js"
import { HfsDirectory, type HfsMachine, type HfsUser } from "../src/actors/hfs/directory.js"
import { Locations } from "../src/actors/hfs/locations.js"
import { Hfs } from "../src/actors/hfs/service.js"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { Metrics } from "../src/runtime/metrics.js"
import { RootSupervisor } from "../src/runtime/supervisor.js"
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
const users: Array<HfsUser> = Array.from({ length: N + 100 }, (_, i) => ({ login: `u${i}`, uid: 10000 + i, group: "user" }))

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
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
