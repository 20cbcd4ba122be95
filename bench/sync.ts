// `npm run bench:sync`: publish→delivery latency of the sync hub to many subscribers over
// loopback HTTP (websocket rpc), then the same with one extra subscriber that stopped reading.
// The hub runs in this process; the subscribers (SyncClient.follow, one websocket each) in a
// child process, so that both sides do not share one event loop. The all-reading run is the
// peer the stalled run is compared with (ratio of p99s). Goal: p99 < 50 ms, and the stalled
// subscriber adds < 5 ms to the others' p99 (it is detached as lagging).
// The peer: the same subscribers and wire (follow route messages) served by a bare `ws`
// broadcaster that sends each batch's pre-encoded bytes to every socket in a loop, no hub, no
// Effect: the ratio of our p99 to its p99 is our overhead on this machine, now.
//
// The udb-like run: the topic filters `password` out for subscribers holding the subscriber
// secret (the public audience), so each batch is shaped per audience before it is encoded.
//
// Knobs (environment): SUBSCRIBERS [200], MESSAGES [500], INTERVAL_MS [20], BUFFER [256].
import { fork } from "node:child_process"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Exit, Layer, Logger, LogLevel, Metric, Redacted, Scope } from "effect"
import * as HttpServer from "@effect/platform/HttpServer"
import { SyncHub } from "../src/actors/sync/hub.js"
import { makeMemorySource } from "../src/actors/sync/memory-source.js"
import { followEncodes, hubMetrics } from "../src/actors/sync/metrics.js"
import { syncRoutes } from "../src/actors/sync/routes.js"
import { udbRecordFilter } from "../src/protocols/udb.js"
import { httpHostLayer, serverUrl } from "../src/runtime/http-host.js"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { Metrics } from "../src/runtime/metrics.js"
import { RootSupervisor } from "../src/runtime/supervisor.js"

const subscribers = Number(process.env["SUBSCRIBERS"] ?? "200")
const messages = Number(process.env["MESSAGES"] ?? "500")
const intervalMs = Number(process.env["INTERVAL_MS"] ?? "20")
const bufferSize = Number(process.env["BUFFER"] ?? "256")
const secret = "bench-secret"
const subSecret = "bench-sub-secret"
// The hub's topic fan-outs are supervised loops: a root that does not end the bench process.
const supervision = RootSupervisor.layerWithExit(() => Effect.void).pipe(Layer.provideMerge(ActorTree.layer))
const here = path.dirname(fileURLToPath(import.meta.url))
const now = () => performance.timeOrigin + performance.now()
const log = (msg: string) => process.stderr.write(`[bench:sync] ${msg}\n`)

const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

interface Report {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly n: number
  readonly resumes: number
  readonly lagging: number
  readonly rssMiB: number
  /** CPU time of the hub's process while publishing, per batch. */
  readonly cpuMsPerBatch: number
  /** Frames the follow route encoded, per batch published (snapshots included). */
  readonly encodesPerBatch: number
}

/** The measuring part: the subscriber process against `url`, `publish(i)` every interval. */
const measure = (url: string, stall: boolean, publish: (i: number) => Effect.Effect<void>, clientSecret = secret) =>
  Effect.gen(function* () {
    const child = fork(path.join(here, "sync-clients.ts"), [url, String(subscribers), stall ? "1" : "0", clientSecret], {
      execArgv: process.env["SYNC_BENCH_PROFILE"] ? ["--import", "tsx", "--cpu-prof", `--cpu-prof-dir=${process.env["SYNC_BENCH_PROFILE"]}`] : ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const inbox: Array<{ type: string; latencies?: Array<number>; resumes?: number }> = []
    child.on("message", (m) => inbox.push(m as (typeof inbox)[number]))
    const waitFor = (type: string) =>
      Effect.gen(function* () {
        for (let i = 0; i < 12_000; i++) {
          const found = inbox.find((m) => m.type === type)
          if (found !== undefined) return found
          yield* Effect.sleep("5 millis")
        }
        return yield* Effect.dieMessage(`no ${type} from the subscriber process`)
      })
    yield* waitFor("ready")
    if (stall) yield* waitFor("stalled")
    log(`${subscribers} subscribers${stall ? " + 1 stalled" : ""} connected to ${url}; publishing ${messages} batches every ${intervalMs} ms`)

    let rss = 0
    const encodesBefore = (yield* Metric.value(followEncodes)).count
    const cpuBefore = process.cpuUsage()
    for (let i = 0; i < messages; i++) {
      yield* publish(i)
      rss = Math.max(rss, process.memoryUsage.rss())
      yield* Effect.sleep(`${intervalMs} millis`)
    }
    yield* Effect.sleep("500 millis")
    const cpu = process.cpuUsage(cpuBefore)
    const encodes = (yield* Metric.value(followEncodes)).count - encodesBefore
    child.send("report")
    const report = yield* waitFor("report")
    yield* Effect.async<void>((resume) => {
      if (child.exitCode !== null) return resume(Effect.void)
      const timer = setTimeout(() => child.kill(), 5000)
      child.once("exit", () => {
        clearTimeout(timer)
        resume(Effect.void)
      })
    })
    const sorted = [...(report.latencies ?? [])].sort((a, b) => a - b)
    const expected = subscribers * messages
    if (sorted.length !== expected) log(`warning: ${sorted.length} deliveries measured, expected ${expected}`)
    return {
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? NaN,
      n: sorted.length,
      resumes: report.resumes ?? 0,
      lagging: 0,
      rssMiB: rss / (1 << 20),
      cpuMsPerBatch: (cpu.user + cpu.system) / 1000 / messages,
      encodesPerBatch: encodes / messages
    } satisfies Report
  })

const batch = (i: number) => [{ type: "update" as const, data: { key: `k${i % 50}`, t: now(), seq: i, password: `pw${i}` } }]

/** `publicAudience`: the udb-like topic, subscribers holding the subscriber secret. */
const run = (stall: boolean, publicAudience = false) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const source = yield* makeMemorySource({ topic: "bench", keyField: "key", retention: 10_000 })
    const topic = {
      definition: { name: "bench", keyField: "key", durable: false, profile: "bench", ...(publicAudience ? { filter: () => udbRecordFilter(() => "unused: the bench has public subscribers only") } : {}) },
      secrets: { publisher: Redacted.make(secret), subscriber: Redacted.make(publicAudience ? subSecret : secret) },
      source
    }
    const ctx = yield* Layer.buildWithScope(
      httpHostLayer(syncRoutes, { listen: { host: "127.0.0.1", port: 0 }, drainTimeout: "100 millis" }).pipe(
        Layer.provideMerge(SyncHub.layer({ topics: [topic], options: { bufferSize } })),
        Layer.provide(Layer.merge(Metrics.layer, supervision))
      ),
      scope
    )
    const hub = Context.get(ctx, SyncHub)
    const url = serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
    const lagBefore = (yield* Metric.value(hubMetrics("bench").lagging)).count

    const report = yield* measure(
      url,
      stall,
      (i) => Effect.asVoid(Effect.orDie(hub.publish("bench", batch(i)))),
      publicAudience ? subSecret : secret
    )
    const lagging = (yield* Metric.value(hubMetrics("bench").lagging)).count - lagBefore
    yield* Scope.close(scope, Exit.void)
    return { ...report, lagging } satisfies Report
  })

interface PeerSocket {
  readonly readyState: number
  send(data: Uint8Array): void
  once(event: "message", listener: () => void): void
}
interface PeerServer {
  address(): { port: number }
  on(event: "connection", listener: (socket: PeerSocket) => void): void
  once(event: "listening", listener: () => void): void
  close(): void
}
// `ws` is what @effect/platform-node's websockets run on (a dependency of it, not of ours).
const { WebSocketServer } = createRequire(import.meta.url)("ws") as {
  WebSocketServer: new (options: { host: string; port: number; path: string }) => PeerServer
}

const peer = Effect.gen(function* () {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/sync/bench/follow" })
  yield* Effect.async<void>((resume) => server.once("listening", () => resume(Effect.void)))
  const sockets = new Set<PeerSocket>()
  const encoder = new TextEncoder()
  const snapshot = encoder.encode(JSON.stringify({ _tag: "Snapshot", epoch: "peer", revision: 0, records: [] }))
  server.on("connection", (socket) =>
    socket.once("message", () => {
      socket.send(snapshot)
      sockets.add(socket)
    })
  )
  const publish = (i: number) =>
    Effect.sync(() => {
      const bytes = encoder.encode(JSON.stringify({ _tag: "Batch", revision: i + 1, updates: batch(i) }))
      for (const s of sockets) if (s.readyState === 1) s.send(bytes)
    })
  const report = yield* measure(`http://127.0.0.1:${server.address().port}`, false, publish).pipe(
    Effect.ensuring(Effect.sync(() => server.close()))
  )
  // It encodes each batch once, itself (the hub's counter does not see it).
  return { ...report, encodesPerBatch: 1 } satisfies Report
})

const program = Effect.gen(function* () {
  const bare = yield* peer
  const reading = yield* run(false)
  const stalled = yield* run(true)
  const filtered = yield* run(false, true)
  const fmt = (r: Report) =>
    `p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  max ${r.max.toFixed(1)} ms  hub CPU ${r.cpuMsPerBatch.toFixed(2)} ms/batch  ${r.encodesPerBatch.toFixed(2)} encodes/batch  (${r.n} deliveries, ${r.resumes} resumes, ${r.lagging} detached as lagging, hub RSS ${r.rssMiB.toFixed(0)} MiB)`
  console.log(`sync hub: ${subscribers} subscribers over loopback websocket (follow route), ${messages} batches every ${intervalMs} ms, buffer ${bufferSize}`)
  console.log(`  peer (bare ws loop)   ${fmt(bare)}`)
  console.log(`  all reading          ${fmt(reading)}`)
  console.log(`  hub / peer: p50 ${(reading.p50 / bare.p50).toFixed(2)}x  p99 ${(reading.p99 / bare.p99).toFixed(2)}x`)
  console.log(`  + 1 stalled          ${fmt(stalled)}`)
  console.log(`  p99 stalled - reading: ${(stalled.p99 - reading.p99).toFixed(2)} ms (ratio ${(stalled.p99 / reading.p99).toFixed(2)})`)
  console.log(`  udb-like, public      ${fmt(filtered)}`)
  console.log(`  public / all reading: p99 ${(filtered.p99 / reading.p99).toFixed(2)}x  hub CPU ${(filtered.cpuMsPerBatch / reading.cpuMsPerBatch).toFixed(2)}x`)
  console.log(`  goals: p99 < 50 ms: ${reading.p99 < 50 && stalled.p99 < 50 && filtered.p99 < 50 ? "met" : "NOT met"}; stalled adds < 5 ms: ${stalled.p99 - reading.p99 < 5 ? "met" : "NOT met"}; stalled one detached: ${stalled.lagging >= 1 ? "yes" : "no"}`)
})

Effect.runPromise(program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).catch((e) => {
  console.error(e)
  process.exit(1)
})
