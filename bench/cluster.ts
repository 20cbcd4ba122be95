// `npm run bench:cluster`: the match cluster's master under load, over the real TCP transport
// and a real (embedded) PostgreSQL, workers simulated in this process (the real worker client
// with a test executor that holds its slots for MATCH_MS).
//
// (a) Dispatch: WORKERS [100] workers x SLOTS [20] slots, MATCHES [1200] queued matches (5 slots
//     each, MATCH_MS [10000] +-50 %): matches/s, and slot utilisation while the queue is not empty (sampled every
//     100 ms from the workers' own counts), against the ideal run (every slot busy all the
//     time: WORKERS*SLOTS/5 matches every MATCH_MS) as the peer. Goal >= 95 % busy.
// (b) Redispatch: DROPS [5] times, a worker holding matches loses its connection; the time until
//     each of its matches runs on another worker. Peer, same run: a worker that stays connected
//     but goes silent (the original's only detection: no heartbeat for 12 s). Goal <= 3 s.
// (c) Sandbox start overhead is the worker lane's (their executor bench).
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Fiber, Layer, Logger, LogLevel, Redacted, Stream } from "effect"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FileStore } from "../src/actors/concours/files.js"
import type { MasterSettings } from "../src/actors/cluster/config.js"
import { ClusterHandlers } from "../src/actors/cluster/handlers.js"
import { ClusterMaster } from "../src/actors/cluster/master.js"
import { TaskQueue } from "../src/actors/cluster/queue.js"
import { runWorkerClient } from "../src/actors/cluster/worker-client.js"
import { Executor } from "../src/actors/worker/executor.js"
import { CLUSTER_SERVICE, ClusterRpcs } from "../src/protocols/cluster.js"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { Metrics } from "../src/runtime/metrics.js"
import { makeRpcTcpClient, RpcTcpServer, rpcTcpServerLayer } from "../src/runtime/rpc-tcp.js"
import { RootSupervisor } from "../src/runtime/supervisor.js"
import { connect } from "../src/store/database.js"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"
import { benchLog, median } from "./support.js"

const WORKERS = Number(process.env["WORKERS"] ?? "100")
const SLOTS = Number(process.env["SLOTS"] ?? "20")
const MATCHES = Number(process.env["MATCHES"] ?? "1200")
const MATCH_MS = Number(process.env["MATCH_MS"] ?? "10000")
const DROPS = Number(process.env["DROPS"] ?? "5")
const COST = 5
const log = benchLog("cluster")
const secret = Redacted.make("bench-cluster-secret")

const settings: MasterSettings = {
  heartbeatMillis: 5000,
  workerTimeoutMillis: 12_000,
  timeoutMillis: { compile: 20_000, match: 450_000 },
  cost: { compile: 1, match: COST },
  maxTries: 10
}

const database = Layer.unwrapScoped(
  Effect.gen(function* () {
    const dir = mkdtempSync(path.join(os.tmpdir(), "prolo-bench-cluster-"))
    chmodSync(dir, 0o755) // the postgres OS user must reach data/ inside
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const pg = yield* startEmbeddedPostgres({ dataDir: path.join(dir, "data"), ...(process.env["FSYNC"] === "off" ? { settings: { fsync: "off", synchronous_commit: "off" } } : {}) })
    return connect(pg.url("postgres"), { maxConnections: Number(process.env["DB_CONNECTIONS"] ?? "20") })
  })
)

const filesDir = mkdtempSync(path.join(os.tmpdir(), "prolo-bench-cluster-files-"))
process.on("exit", () => rmSync(filesDir, { recursive: true, force: true }))

const master = rpcTcpServerLayer({ service: CLUSTER_SERVICE, group: ClusterRpcs, handlers: ClusterHandlers, secret, listen: { host: "127.0.13.1", port: 0 } }).pipe(
  Layer.provideMerge(ClusterMaster.layer(settings)),
  Layer.provideMerge(Layer.mergeAll(TaskQueue.sql, FileStore.layer(filesDir))),
  Layer.provideMerge(database),
  Layer.provideMerge(RootSupervisor.layerWithExit(() => Effect.void)),
  Layer.provideMerge(ActorTree.layer),
  Layer.provideMerge(Metrics.layer)
)

// What the simulated workers report: slots busy now, and each attempt's start time.
const busy = { slots: 0 }
const starts = new Map<string, number>()
const runningOn = new Map<number, string>()
// Per worker, when its slots freed; a start takes the oldest: the gap a slot stayed idle.
const ends = new Map<string, Array<number>>()
const gaps: Array<number> = []

const executorFor = (worker: string, holdMs: () => number) =>
  Executor.of({
    compile: (task) => Effect.succeed({ taskId: task.taskId, attempt: task.attempt, championId: task.championId, status: "ready" as const, compiled: task.sources, log: "", durationMs: 0 }),
    runMatch: (task) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const freed = ends.get(worker)?.shift()
        if (freed !== undefined) gaps.push(now - freed)
        starts.set(`${task.matchId}:${task.attempt}`, now)
        runningOn.set(task.matchId, worker)
        busy.slots += COST
        yield* Effect.sleep(Duration.millis(holdMs())).pipe(Effect.ensuring(Effect.sync(() => (busy.slots -= COST))))
        const done = Date.now()
        ends.set(worker, [...(ends.get(worker) ?? []), done])
        return {
          taskId: task.taskId,
          attempt: task.attempt,
          matchId: task.matchId,
          status: "done" as const,
          players: task.players.map((p, i) => ({ playerId: p.playerId, championId: p.championId, score: i, nbTimeout: 0, log: "" })),
          serverStdout: "",
          serverStderr: "",
          durationMs: 0
        }
      })
  })

const seed = (sql: SqlClient.SqlClient, files: FileStore["Type"], n: number) =>
  Effect.gen(function* () {
    const digest = yield* files.put(new TextEncoder().encode("compiled"))
    const rows = yield* sql<{ id: number }>`SELECT id FROM champion WHERE author = 'bench'`
    const [a, b] =
      rows.length === 2
        ? rows.map((r) => r.id)
        : (yield* sql<{ id: number }>`INSERT INTO champion (name, author, status, sources_digest, compiled_digest)
            VALUES ('a', 'bench', 'ready', ${digest}, ${digest}), ('b', 'bench', 'ready', ${digest}, ${digest}) RETURNING id`).map((r) => r.id)
    const ids = yield* sql<{ id: number }>`
      WITH m AS (INSERT INTO match (author, status) SELECT 'bench', 'creating' FROM generate_series(1, ${n}) RETURNING id),
      p AS (INSERT INTO match_player (match_id, champion_id) SELECT id, c FROM m, unnest(ARRAY[${a}::int, ${b}::int]) AS c)
      SELECT id FROM m ORDER BY id`
    yield* sql`UPDATE match SET status = 'new' WHERE status = 'creating'`
    return ids.map((r) => r.id)
  })

const waitUntil = (probe: () => boolean, ms: number) =>
  Effect.gen(function* () {
    const end = Date.now() + ms
    while (!probe() && Date.now() < end) yield* Effect.sleep(Duration.millis(20))
    return probe()
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const files = yield* FileStore
  const { address } = yield* RpcTcpServer
  const cluster = yield* ClusterMaster
  const metrics = yield* Metrics
  const startWorker = (name: string, holdMs: () => number) =>
    Effect.forkDaemon(
      runWorkerClient({ master: address, secret, worker: name, slots: SLOTS, cost: { compile: 1, match: COST } }).pipe(
        Effect.provideService(Executor, executorFor(name, holdMs)),
        Effect.provideService(Metrics, metrics)
      )
    )

  // (a) dispatch throughput and slot utilisation
  log(`(a) ${WORKERS} workers x ${SLOTS} slots, ${MATCHES} matches of ${MATCH_MS} ms`)
  // Durations spread over [0.5, 1.5] x MATCH_MS as real games are (identical ones would end in
  // lockstep, every slot freed in the same instant).
  const workers = yield* Effect.forEach(Array.from({ length: WORKERS }, (_, i) => `bw${i}`), (n) => startWorker(n, () => MATCH_MS * (0.5 + Math.random())))
  yield* Effect.gen(function* () {
    for (let i = 0; i < 200 && (yield* cluster.status).workers.length < WORKERS; i++) yield* Effect.sleep(Duration.millis(50))
  })
  const ids = yield* seed(sql, files, MATCHES)
  const total = WORKERS * SLOTS
  const samples: Array<number> = []
  const t0 = Date.now()
  yield* cluster.wake
  const firstAttempts = () => ids.reduce((n, id) => n + (starts.has(`${id}:1`) ? 1 : 0), 0)
  // sample while the queue is not empty: until the last match has started
  let allStartedAt = 0
  while (Date.now() - t0 < 600_000) {
    yield* Effect.sleep(Duration.millis(100))
    if (firstAttempts() >= MATCHES) {
      allStartedAt = Date.now()
      break
    }
    if (Date.now() - t0 > 1000) samples.push(busy.slots / total) // skip the ramp-up second
  }
  const [doneRow] = yield* Effect.gen(function* () {
    for (;;) {
      const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM match WHERE status = 'done' AND author = 'bench'`
      if (Number(rows[0]!.n) >= MATCHES || Date.now() - t0 > 600_000) return rows
      yield* Effect.sleep(Duration.millis(100))
    }
  })
  const elapsed = (Date.now() - t0) / 1000
  const rate = MATCHES / elapsed
  const ideal = total / COST / (MATCH_MS / 1000)
  const utilisation = samples.length === 0 ? NaN : samples.reduce((a, b) => a + b, 0) / samples.length
  console.log(`(a) dispatch: ${MATCHES} matches on ${WORKERS} workers x ${SLOTS} slots (${MATCH_MS} ms each) in ${elapsed.toFixed(1)} s (${Number(doneRow!.n)} done)`)
  console.log(`    throughput ${rate.toFixed(1)} matches/s vs ideal ${ideal.toFixed(1)} matches/s (every slot busy): ratio ${(rate / ideal).toFixed(3)} (the whole run: includes the last matches still running after the queue drained)`)
  const rounds = (yield* metrics.render).body.split("\n").filter((l) => l.startsWith("prolo_cluster_dispatch_round_seconds") || l.startsWith("masternode_match_done_db"))
  log(rounds.join("; "))
  const sorted = [...gaps].sort((x, y) => x - y)
  console.log(`    idle gap of a slot between two matches: median ${median(gaps).toFixed(0)} ms, p90 ${(sorted[Math.floor(sorted.length * 0.9)] ?? NaN).toFixed(0)} ms`)
  console.log(`    slots busy while the queue was not empty: ${(utilisation * 100).toFixed(1)} % (mean of ${samples.length} samples, goal >= 95 %); queue drained at ${((allStartedAt - t0) / 1000).toFixed(1)} s`)
  yield* Effect.forEach(workers, Fiber.interrupt, { discard: true })

  // (b) redispatch after a dropped connection, vs a silent worker (heartbeat timeout)
  yield* Effect.gen(function* () {
    for (let i = 0; i < 200 && (yield* cluster.status).workers.length > 0; i++) yield* Effect.sleep(Duration.millis(50))
  })
  log(`(b) ${DROPS} connection drops among 6 workers holding long matches`)
  const long = () => 600_000
  const fleet = new Map<string, Fiber.RuntimeFiber<never>>()
  for (let i = 0; i < 6; i++) fleet.set(`rw${i}`, yield* startWorker(`rw${i}`, long))
  for (let i = 0; i < 200 && (yield* cluster.status).workers.length < 6; i++) yield* Effect.sleep(Duration.millis(50))
  const batch = yield* seed(sql, files, 12) // two per worker: 10 of 20 slots used, room to take a lost worker's
  yield* cluster.wake
  yield* waitUntil(() => batch.every((id) => starts.has(`${id}:1`)), 30_000)
  const delays: Array<number> = []
  for (let d = 0; d < DROPS; d++) {
    const victim = `rw${d % 6}`
    const held = batch.filter((id) => runningOn.get(id) === victim)
    const attempts = new Map(held.map((id) => [id, [...starts.keys()].filter((k) => k.startsWith(`${id}:`)).length]))
    const dropAt = Date.now()
    yield* Fiber.interrupt(fleet.get(victim)!) // closes its connection; its executor fibers stop
    const moved = yield* waitUntil(() => held.every((id) => starts.has(`${id}:${attempts.get(id)! + 1}`)), 30_000)
    if (!moved) log(`drop ${d}: not all of ${victim}'s matches moved within 30 s`)
    for (const id of held) {
      const s = starts.get(`${id}:${attempts.get(id)! + 1}`)
      if (s !== undefined) delays.push(s - dropAt)
    }
    fleet.set(victim, yield* startWorker(victim, long))
    for (let i = 0; i < 200 && (yield* cluster.status).workers.length < 6; i++) yield* Effect.sleep(Duration.millis(50))
  }
  // Peer: a worker that keeps its connection but stops heartbeating (hung): found at 12 s.
  const silentClient = yield* makeRpcTcpClient(ClusterRpcs, { ...address, secret })
  const silentTasks: Array<{ id: number; attempt: number }> = []
  const silent = yield* Effect.forkScoped(
    Stream.runForEach(silentClient.join({ worker: "silent", slots: SLOTS }), (o) =>
      Effect.sync(() => {
        if (o._tag === "Match") silentTasks.push({ id: o.task.matchId, attempt: o.task.attempt })
      })
    )
  )
  const extra = yield* seed(sql, files, 2)
  yield* cluster.wake
  yield* waitUntil(() => silentTasks.length > 0 || extra.every((id) => starts.has(`${id}:1`)), 10_000)
  const silentAt = Date.now()
  const silentHeld = [...silentTasks]
  const peerMoved = yield* waitUntil(() => silentHeld.every((t) => starts.has(`${t.id}:${t.attempt + 1}`)), 30_000)
  const peerDelay = silentHeld.length === 0 ? NaN : Math.max(...silentHeld.map((t) => (starts.get(`${t.id}:${t.attempt + 1}`) ?? NaN) - silentAt))
  yield* Fiber.interrupt(silent)
  const worst = Math.max(...delays)
  console.log(`(b) redispatch after a dropped connection: ${delays.length} matches over ${DROPS} drops: median ${median(delays).toFixed(0)} ms, worst ${worst.toFixed(0)} ms (goal <= 3000 ms)`)
  console.log(
    `    peer, same run: a silent worker (connected, no heartbeat): ${silentHeld.length} match(es) moved after ${peerDelay.toFixed(0)} ms${peerMoved ? "" : " (not all moved)"}; ratio silent/dropped worst ${(peerDelay / worst).toFixed(1)}x`
  )
  console.log(`(c) sandbox start overhead: see the worker lane's executor bench`)
  yield* Effect.forEach([...fleet.values()], Fiber.interrupt, { discard: true })
})

Effect.runPromise(
  Effect.scoped(
    Effect.flatMap(Layer.build(master), (ctx) => Effect.provide(program, ctx)).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
  ).pipe(Effect.tapErrorCause((c) => Effect.sync(() => console.error(c))))
).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)

