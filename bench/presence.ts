// `npm run bench:presence`: login decisions per second and their latency over the rpc
// transports on loopback, against a bare rpc echo of the same payload and auth in the same run.
//
// Presence runs for real: PresenceActor over the presence_lease table of an embedded
// PostgreSQL (fsync on, as a gateway runs it), directory facts in memory, publishing to an
// in-memory recorder. The echo peer is an rpc group with the same payload and TimeAuth whose
// handler returns at once, so the ratio is what presence costs above the transport.
//
// Workload per user i (all RequestLogin, timed one by one): new login on host i (accepted, one
// database write), same-host re-login (accepted, no write), login on host i+1 (refused: already
// logged), login of another user on host i (refused: busy). Logouts between rounds are not timed.
// New logins and the three decisions without a write are also reported apart, against the
// write's own floor (the same INSERT alone; fdatasync on the same filesystem).
// Knobs (environment): USERS [250] per round, ROUNDS [3], CONCURRENCY [16] for the throughput pass.
import * as HttpServer from "@effect/platform/HttpServer"
import { Rpc, RpcGroup } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Logger, LogLevel, Redacted, Schema } from "effect"
import { chmodSync, closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Directory } from "../src/actors/presence/directory.js"
import { PresenceHandlers } from "../src/actors/presence/handlers.js"
import { LeaseStore } from "../src/actors/presence/lease-store.js"
import { PresencePublisher } from "../src/actors/presence/publisher.js"
import { Presence } from "../src/actors/presence/service.js"
import { PRESENCE_SERVICE, PresenceRpcs } from "../src/protocols/presence.js"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { makeRpcClient } from "../src/runtime/cli-client.js"
import { httpHostLayer, serverUrl } from "../src/runtime/http-host.js"
import { Metrics } from "../src/runtime/metrics.js"
import { TimeAuth } from "../src/runtime/rpc-auth.js"
import { rpcRoute } from "../src/runtime/rpc-route.js"
import { makeRpcTcpClient, RpcTcpServer, rpcTcpServerLayer } from "../src/runtime/rpc-tcp.js"
import { RootSupervisor } from "../src/runtime/supervisor.js"
import { connect } from "../src/store/database.js"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"

const USERS = Number(process.env["USERS"] ?? "250")
const ROUNDS = Number(process.env["ROUNDS"] ?? "3")
const CONCURRENCY = Number(process.env["CONCURRENCY"] ?? "16")

class EchoRpcs extends RpcGroup.make(
  Rpc.make("Echo", { payload: { login: Schema.String, hostname: Schema.String } })
).middleware(TimeAuth) {}
const echoHandlers = EchoRpcs.toLayer({ Echo: () => Effect.void })

const secret = Redacted.make("bench-secret")
const local = { host: "127.0.0.1", port: 0 }
const host = (i: number) => `pas-${i}`
const machines = Object.fromEntries(Array.from({ length: USERS + 2 }, (_, i) => [host(i), { mtype: "user" }]))
const users = Object.fromEntries(Array.from({ length: USERS + 2 }, (_, i) => [`user${i}`, { group: "user" }]))

const database = Layer.unwrapScoped(
  Effect.gen(function* () {
    const dir = mkdtempSync(path.join(os.tmpdir(), "prolo-bench-presence-"))
    chmodSync(dir, 0o755) // the postgres OS user must reach data/ inside
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const pg = yield* startEmbeddedPostgres({ dataDir: path.join(dir, "data") })
    return connect(pg.url("postgres"))
  })
)

const presence = Presence.layer({ leaseMillis: 600_000 }).pipe(
  Layer.provide(Directory.fromRecords(machines, users)),
  Layer.provide(LeaseStore.sql),
  Layer.provide(PresencePublisher.recording().layer),
  Layer.provideMerge(database)
)

const runtime = RootSupervisor.layerWithExit(() => Effect.void).pipe(
  Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer))
)

type Call = Effect.Effect<void, unknown>

interface Client {
  readonly login: (login: string, hostname: string) => Call
  readonly logout: (login: string, hostname: string) => Call
  readonly echo: (login: string, hostname: string) => Call
}

const pct = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

interface Figures {
  readonly p50: number
  readonly p99: number
  readonly perSecond: number
  readonly accepted: number
}

/** The four decisions for each user, sequential: latency of each call and decisions/s. */
const sequentialDecisions = (client: Client) =>
  Effect.gen(function* () {
    const samples: Array<number> = []
    const newLogin: Array<number> = []
    const noWrite: Array<number> = []
    let accepted = 0
    const time = (call: Call, into?: Array<number>) =>
      Effect.gen(function* () {
        const t0 = performance.now()
        const ok = yield* Effect.match(call, { onFailure: () => false, onSuccess: () => true })
        const dt = performance.now() - t0
        samples.push(dt)
        into?.push(dt)
        if (ok) accepted++
      })
    const t0 = performance.now()
    for (let i = 0; i < USERS; i++) {
      yield* time(client.login(`user${i}`, host(i)), newLogin)
      yield* time(client.login(`user${i}`, host(i)), noWrite)
      yield* time(client.login(`user${i}`, host(i + 1)), noWrite)
      yield* time(client.login(`user${i + 1}`, host(i)), noWrite)
      // free both so the next user's decisions are the same kind
    }
    const elapsed = performance.now() - t0
    yield* Effect.forEach(Array.from({ length: USERS }, (_, i) => i), (i) => Effect.ignore(client.logout(`user${i}`, host(i))), {
      concurrency: 8
    })
    samples.sort((a, b) => a - b)
    newLogin.sort((a, b) => a - b)
    noWrite.sort((a, b) => a - b)
    return {
      all: { p50: pct(samples, 0.5), p99: pct(samples, 0.99), perSecond: (samples.length / elapsed) * 1000, accepted } satisfies Figures,
      newLogin: { p50: pct(newLogin, 0.5), p99: pct(newLogin, 0.99) },
      noWrite: { p50: pct(noWrite, 0.5), p99: pct(noWrite, 0.99) }
    }
  })

const sequentialEcho = (client: Client) =>
  Effect.gen(function* () {
    const samples: Array<number> = []
    const t0 = performance.now()
    for (let i = 0; i < USERS * 4; i++) {
      const s = performance.now()
      yield* client.echo(`user${i % USERS}`, host(i % USERS))
      samples.push(performance.now() - s)
    }
    const elapsed = performance.now() - t0
    samples.sort((a, b) => a - b)
    return { p50: pct(samples, 0.5), p99: pct(samples, 0.99), perSecond: (samples.length / elapsed) * 1000, accepted: samples.length }
  })

/** Throughput with CONCURRENCY calls in flight: new logins (each a database write) vs echo. */
const concurrent = (call: (i: number) => Call, count: number) =>
  Effect.gen(function* () {
    const t0 = performance.now()
    yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => Effect.ignore(call(i)), { concurrency: CONCURRENCY, discard: true })
    return (count / (performance.now() - t0)) * 1000
  })

const f = (x: number) => x.toFixed(3)

/**
 * The write's floor, two peers: the same statement a new login runs (one autocommit INSERT,
 * fsync on), sequential on the same database; and fdatasync of an 8 KiB write on the same
 * filesystem, which is what PostgreSQL's commit waits for.
 */
const writeFloor = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows: Array<number> = []
  for (let i = 0; i < USERS; i++) {
    const t0 = performance.now()
    yield* sql`INSERT INTO presence_lease (login, hostname, since) VALUES (${`peer${i}`}, ${`peer-host-${i}`}, ${new Date()})
               ON CONFLICT (login) DO UPDATE SET hostname = EXCLUDED.hostname, since = EXCLUDED.since`
    rows.push(performance.now() - t0)
  }
  yield* sql`DELETE FROM presence_lease WHERE login LIKE 'peer%'`
  const file = path.join(os.tmpdir(), `prolo-bench-fsync-${process.pid}`)
  const fd = openSync(file, "w")
  const block = Buffer.alloc(8192, 1)
  const syncs: Array<number> = []
  try {
    for (let i = 0; i < USERS; i++) {
      writeSync(fd, block, 0, block.length, 0)
      const t0 = performance.now()
      fdatasyncSync(fd)
      syncs.push(performance.now() - t0)
    }
  } finally {
    closeSync(fd)
    unlinkSync(file)
  }
  rows.sort((a, b) => a - b)
  syncs.sort((a, b) => a - b)
  return { insert: { p50: pct(rows, 0.5), p99: pct(rows, 0.99) }, fdatasync: { p50: pct(syncs, 0.5), p99: pct(syncs, 0.99) } }
})

const program = Effect.gen(function* () {
  const ctx = yield* Layer.build(
    httpHostLayer(
      Layer.merge(
        rpcRoute({ service: PRESENCE_SERVICE, group: PresenceRpcs, handlers: PresenceHandlers, secret }),
        rpcRoute({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret })
      ),
      { listen: local }
    )
  )
  const url = serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
  const presenceTcp = yield* Layer.build(
    rpcTcpServerLayer({ service: PRESENCE_SERVICE, group: PresenceRpcs, handlers: PresenceHandlers, secret, listen: local })
  )
  const echoTcp = yield* Layer.build(rpcTcpServerLayer({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret, listen: local }))
  const portOf = (c: typeof presenceTcp) => Effect.succeed(Context.get(c, RpcTcpServer).address.port)

  const httpPresence = yield* makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret })
  const httpEcho = yield* makeRpcClient(EchoRpcs, { url, service: "echo", secret })
  const tcpPresence = yield* makeRpcTcpClient(PresenceRpcs, { host: "127.0.0.1", port: yield* portOf(presenceTcp), secret })
  const tcpEcho = yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port: yield* portOf(echoTcp), secret })

  const clients: Record<"http+ndjson" | "tcp+msgpack", Client> = {
    "http+ndjson": {
      login: (login, hostname) => httpPresence.RequestLogin({ login, hostname }) as Call,
      logout: (login, hostname) => httpPresence.Logout({ login, hostname }) as Call,
      echo: (login, hostname) => httpEcho.Echo({ login, hostname }) as Call
    },
    "tcp+msgpack": {
      login: (login, hostname) => tcpPresence.RequestLogin({ login, hostname }) as Call,
      logout: (login, hostname) => tcpPresence.Logout({ login, hostname }) as Call,
      echo: (login, hostname) => tcpEcho.Echo({ login, hostname }) as Call
    }
  }

  // warm-up: connections, JIT, database pool
  for (const client of Object.values(clients)) {
    yield* sequentialEcho(client)
    yield* sequentialDecisions(client)
  }

  console.log(`presence bench: ${USERS} users x 4 RequestLogin decisions per round, ${ROUNDS} rounds per transport, PostgreSQL embedded (fsync on)`)
  for (let round = 1; round <= 2; round++) {
    const floor = yield* writeFloor
    console.log(
      `  write floor ${round}: INSERT alone p50 ${f(floor.insert.p50)} p99 ${f(floor.insert.p99)} ms | ` +
        `fdatasync 8 KiB p50 ${f(floor.fdatasync.p50)} p99 ${f(floor.fdatasync.p99)} ms`
    )
  }
  for (const [name, client] of Object.entries(clients)) {
    const best = { decisions: undefined as Figures | undefined, echo: undefined as Figures | undefined, newP99: Infinity, noWriteP99: Infinity }
    for (let round = 1; round <= ROUNDS; round++) {
      const e = yield* sequentialEcho(client)
      const d = yield* sequentialDecisions(client)
      console.log(
        `  ${name} round ${round}: decisions p50 ${f(d.all.p50)} ms p99 ${f(d.all.p99)} ms ${d.all.perSecond.toFixed(0)}/s ` +
          `(new logins p50 ${f(d.newLogin.p50)} p99 ${f(d.newLogin.p99)} ms; no write p50 ${f(d.noWrite.p50)} p99 ${f(d.noWrite.p99)} ms) | echo p50 ${f(e.p50)} ms p99 ${f(e.p99)} ms ${e.perSecond.toFixed(0)}/s`
      )
      if (best.decisions === undefined || d.all.p99 < best.decisions.p99) best.decisions = d.all
      if (best.echo === undefined || e.p99 < best.echo.p99) best.echo = e
      best.newP99 = Math.min(best.newP99, d.newLogin.p99)
      best.noWriteP99 = Math.min(best.noWriteP99, d.noWrite.p99)
    }
    const d = best.decisions!
    const e = best.echo!
    console.log(
      `${name}: best p99 decisions ${f(d.p99)} ms (goal < 2 ms: ${d.p99 < 2 ? "met" : "NOT met"}), echo ${f(e.p99)} ms, ` +
        `ratio p99 ${(d.p99 / e.p99).toFixed(2)}x, p50 ${(d.p50 / e.p50).toFixed(2)}x; ` +
        `decisions/s ${d.perSecond.toFixed(0)} vs echo ${e.perSecond.toFixed(0)}/s (${(d.perSecond / e.perSecond).toFixed(2)}x); new-login p99 ${f(best.newP99)} ms, no-write decisions p99 ${f(best.noWriteP99)} ms (goal: ${best.noWriteP99 < 2 ? "met" : "NOT met"})`
    )
    const base = 100_000 * (name === "tcp+msgpack" ? 2 : 1)
    const loginRate = yield* concurrent((i) => client.login(`user${i}`, host(i)), USERS)
    yield* Effect.forEach(Array.from({ length: USERS }, (_, i) => i), (i) => Effect.ignore(client.logout(`user${i}`, host(i))), { concurrency: 8 })
    const echoRate = yield* concurrent((i) => client.echo(`user${i + base}`, host(i)), USERS)
    console.log(
      `${name}: ${CONCURRENCY} in flight: new logins (one database write each) ${loginRate.toFixed(0)}/s vs echo ${echoRate.toFixed(0)}/s (${(loginRate / echoRate).toFixed(2)}x)`
    )
  }
}).pipe(Effect.scoped, Effect.provide(Layer.provideMerge(presence, runtime)), Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  }
)
