// `npm run bench:rpc`: sequential call latency of the two rpc transports, in one process:
// HTTP + ndjson at /rpc/<service> on the node's host (rpcRoute + makeRpcClient) against raw
// TCP + msgpack (rpc-tcp.ts), both with TimeAuth. Rounds alternate the transports so that
// machine load hits both alike; the ratio is the figure to trust.
// Knobs (environment): CALLS [400] per round and transport, ROUNDS [3].
import * as HttpServer from "@effect/platform/HttpServer"
import * as SocketServer from "@effect/platform/SocketServer"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Clock, Effect, Layer, Redacted, Schema } from "effect"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { makeRpcClient } from "../src/runtime/cli-client.js"
import { httpHostLayer, serverUrl } from "../src/runtime/http-host.js"
import { Metrics } from "../src/runtime/metrics.js"
import { TimeAuth } from "../src/runtime/rpc-auth.js"
import { rpcRoute } from "../src/runtime/rpc-route.js"
import { makeRpcTcpClient, rpcTcpServerLayer } from "../src/runtime/rpc-tcp.js"

const CALLS = Number(process.env["CALLS"] ?? "400")
const ROUNDS = Number(process.env["ROUNDS"] ?? "3")

// What a worker reports to the master: small payload, small reply.
class BenchRpcs extends RpcGroup.make(
  Rpc.make("Heartbeat", { payload: { worker: Schema.String, slots: Schema.Int }, success: Schema.Int })
).middleware(TimeAuth) {}
const handlers = BenchRpcs.toLayer({ Heartbeat: ({ slots }) => Effect.succeed(slots + 1) })
const secret = Redacted.make("bench-secret")
const local = { host: "127.0.0.1", port: 0 }

const servers = Layer.merge(
  httpHostLayer(rpcRoute({ service: "bench", group: BenchRpcs, handlers, secret }), { listen: local }),
  rpcTcpServerLayer({ service: "bench", group: BenchRpcs, handlers, secret, listen: local })
).pipe(Layer.provide(ActorTree.layer), Layer.provide(Metrics.layer))

const timeCalls = (call: Effect.Effect<number, unknown>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 20; i++) yield* call // warm-up: connection, JIT
    const samples: Array<number> = []
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      yield* call
      samples.push(performance.now() - t0)
    }
    return samples.sort((a, b) => a - b)
  })

const pct = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

const program = Effect.gen(function* () {
  const http = yield* HttpServer.HttpServer
  const tcp = yield* SocketServer.SocketServer
  if (tcp.address._tag !== "TcpAddress") return yield* Effect.dieMessage("tcp server has no TCP address")
  const httpClient = yield* makeRpcClient(BenchRpcs, { url: serverUrl(http.address), service: "bench", secret })
  const tcpClient = yield* makeRpcTcpClient(BenchRpcs, { host: "127.0.0.1", port: tcp.address.port, secret })
  const payload = { worker: "worker-1", slots: 4 }
  const medians = { http: [] as Array<number>, tcp: [] as Array<number> }
  const started = yield* Clock.currentTimeMillis
  for (let round = 1; round <= ROUNDS; round++) {
    const h = yield* timeCalls(httpClient.Heartbeat(payload))
    const t = yield* timeCalls(tcpClient.Heartbeat(payload))
    medians.http.push(pct(h, 0.5))
    medians.tcp.push(pct(t, 0.5))
    console.log(
      `round ${round}: http+ndjson median ${pct(h, 0.5).toFixed(3)} ms p99 ${pct(h, 0.99).toFixed(3)} ms | ` +
        `tcp+msgpack median ${pct(t, 0.5).toFixed(3)} ms p99 ${pct(t, 0.99).toFixed(3)} ms`
    )
  }
  const best = (xs: ReadonlyArray<number>) => Math.min(...xs)
  console.log(
    `best medians over ${ROUNDS} rounds of ${CALLS} sequential calls: http+ndjson ${best(medians.http).toFixed(3)} ms, ` +
      `tcp+msgpack ${best(medians.tcp).toFixed(3)} ms, ratio ${(best(medians.http) / best(medians.tcp)).toFixed(1)}x ` +
      `(${((yield* Clock.currentTimeMillis) - started) / 1000} s)`
  )
}).pipe(Effect.scoped, Effect.provide(servers))

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  }
)
