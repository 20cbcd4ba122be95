// MDB on the embedded PostgreSQL: cluster start-up, then register/query latency against a
// bare round trip on the same pool (the peer), so the ratios say what MDB itself costs.
//   npm run bench:mdb            (PROLO_BENCH_N=… to change the number of registrations)
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Mdb } from "../src/actors/mdb/service.js"
import * as MdbService from "../src/actors/mdb/service.js"
import { connect } from "../src/store/database.js"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"

const N = Number(process.env.PROLO_BENCH_N ?? 200)

const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const t0 = performance.now()
    const a = yield* self
    return [performance.now() - t0, a] as const
  })

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const fmt = (ms: number) => (ms < 10 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`)

const perCall = <E, R>(n: number, f: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    const samples: Array<number> = []
    for (let i = 0; i < n; i++) samples.push((yield* timed(f(i)))[0])
    return median(samples)
  })

const program = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-bench-mdb-"))
      await fs.chmod(dir, 0o755)
      return dir
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )
  const dataDir = path.join(root, "db")
  // Production durability settings (fsync on): what a gw sees.
  const [coldMs] = yield* timed(Effect.scoped(startEmbeddedPostgres({ dataDir })))
  const [warmMs, pg] = yield* timed(startEmbeddedPostgres({ dataDir }))
  console.log(`embedded PostgreSQL: initdb+start+stop ${fmt(coldMs)}, restart on an existing cluster ${fmt(warmMs)}`)

  const [migrateMs, ctx] = yield* timed(Layer.build(MdbService.layer.pipe(Layer.provideMerge(connect(pg.url("postgres"))))))
  console.log(`connect + migrations on an empty database: ${fmt(migrateMs)}`)

  yield* Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const mdb = yield* Mdb
    const reg = (i: number) => ({
      hostname: `pas-r${String(Math.floor(i / 100)).padStart(2, "0")}p${String(i % 100).padStart(2, "0")}`,
      mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
      rfs: 0,
      hfs: 0,
      room: "pasteur",
      mtype: "user"
    })
    const peer = yield* perCall(N, () => sql`SELECT 1`)
    const insertPeer = yield* perCall(N, (i) => sql`INSERT INTO setting (key, value_int) VALUES (${`bench${i}`}, ${i})`)
    const register = yield* perCall(Math.min(N, 250), (i) => mdb.register(reg(i)))
    console.log(`sequential medians: SELECT 1 ${fmt(peer)}, autocommit INSERT ${fmt(insertPeer)}, register ${fmt(register)}`)
    console.log(`register / INSERT = ${(register / insertPeer).toFixed(1)}x, register / SELECT 1 = ${(register / peer).toFixed(1)}x`)
    yield* sql`TRUNCATE machine, machine_name, change_log, sync_state, sync_revision`
    const [burstMs] = yield* timed(
      Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => mdb.register(reg(i)), { concurrency: "unbounded" })
    )
    console.log(`50 concurrent registrations (one pool, serialised by its row lock): ${fmt(burstMs)}, ${fmt(burstMs / 50)} each`)
    const query = yield* perCall(50, () => mdb.query({}))
    const filtered = yield* perCall(50, () => mdb.query({ mac: "02:00:00:00:00:07" }))
    console.log(`query all 50 machines ${fmt(query)}, query by mac ${fmt(filtered)} (SELECT 1 peer ${fmt(peer)})`)
  }).pipe(Effect.provide(ctx))
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
