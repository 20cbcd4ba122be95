import { SqlClient } from "@effect/sql"
import { Context, Effect, Fiber, Layer, Queue, Stream } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { Order } from "../../src/protocols/cluster.js"
import { FileStore, makeFileStore } from "../../src/actors/concours/files.js"
import type { MasterSettings } from "../../src/actors/cluster/config.js"
import { ClusterMaster } from "../../src/actors/cluster/master.js"
import { TaskQueue } from "../../src/actors/cluster/queue.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { testSupervision } from "../support/supervision.js"

export const settings = (over: Partial<MasterSettings> = {}): MasterSettings => ({
  heartbeatMillis: 5000,
  workerTimeoutMillis: 12_000,
  timeoutMillis: { compile: 20_000, match: 450_000 },
  cost: { compile: 1, match: 5 },
  maxTries: 10,
  ...over
})

/** A temp directory for a file store, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "prolo-cluster-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** The master over the test database (emptied first), with its own file store, metrics and tree. */
export const startMaster = (over: Partial<MasterSettings> = {}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`TRUNCATE match_player, match, champion, map RESTART IDENTITY CASCADE`
    const dir = yield* tempDir
    const ctx = yield* Layer.build(
      ClusterMaster.layer(settings(over)).pipe(
        Layer.provideMerge(Layer.mergeAll(TaskQueue.sql, FileStore.layer(dir), Metrics.layer, testSupervision))
      )
    )
    return { master: Context.get(ctx, ClusterMaster), files: makeFileStore(dir), metrics: Context.get(ctx, Metrics), sql }
  })

/** A worker joined in process: its orders in a queue; `drop` ends its stream as a lost connection does. */
export const joinWorker = (master: ClusterMaster["Type"], worker: string, slots = 20) =>
  Effect.gen(function* () {
    const orders = yield* Queue.unbounded<Order>()
    const fiber = yield* Effect.forkScoped(Stream.runForEach(master.join(worker, slots), (o) => Queue.offer(orders, o)))
    const welcome = yield* Queue.take(orders)
    if (welcome._tag !== "Welcome") return yield* Effect.dieMessage(`expected Welcome, got ${welcome._tag}`)
    return { worker, session: welcome.session, orders, fiber, drop: Fiber.interrupt(fiber), next: Queue.take(orders) }
  })

export const metricValue = (metrics: Metrics["Type"], name: string, labels = "") =>
  Effect.map(metrics.render, ({ body }) => {
    const line = body.split("\n").find((l) => (labels === "" ? l.startsWith(`${name} `) : l.startsWith(`${name}{`) && l.includes(labels)))
    return line === undefined ? 0 : Number(line.split(" ").pop())
  })

export const seedChampion = (files: FileStore["Type"], author: string, name: string, sources = `${author}/${name}`) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const digest = yield* files.put(new TextEncoder().encode(sources))
    const [row] = yield* sql<{ id: number }>`INSERT INTO champion (name, author, sources_digest) VALUES (${name}, ${author}, ${digest}) RETURNING id`
    return row!.id
  })

export const seedMatch = (champions: ReadonlyArray<number>, priority = 700) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [m] = yield* sql<{ id: number }>`INSERT INTO match (author, priority, status) VALUES ('orga', ${priority}, 'creating') RETURNING id`
    for (const c of champions) yield* sql`INSERT INTO match_player (match_id, champion_id) VALUES (${m!.id}, ${c})`
    yield* sql`UPDATE match SET status = 'new' WHERE id = ${m!.id}`
    return m!.id
  })
