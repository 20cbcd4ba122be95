// `npm run bench:rpc`: sequential call latency of the rpc transports, client and server in one
// process, against peers in the same run:
//   - net echo:      a bare node:net echo of the same msgpack frames (no Effect, no schema, no
//                    auth): the floor of this machine's loopback and event loop;
//   - tcp (ours):    rpc-tcp.ts, TimeAuth on;
//   - tcp (platform): the same group over @effect/platform's Socket protocol (RpcServer
//                    .layerProtocolSocketServer / RpcClient.layerProtocolSocket), as rpc-tcp.ts
//                    was built before;
//   - http+ndjson:   /rpc/<service> on the node's HTTP host (rpcRoute + makeRpcClient).
// Rounds alternate the transports so that machine load hits all alike; ratios are the figures
// to trust. CPU is the process's user+system time per call (both ends are in this process).
// Knobs (environment): CALLS [2000] per round and transport, ROUNDS [3], HTTP [1] (0 skips it).
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SocketServer from "@effect/platform/SocketServer"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import * as net from "node:net"
import { ActorTree } from "../src/runtime/actor-tree.js"
import { makeRpcClient } from "../src/runtime/cli-client.js"
import { httpHostLayer, serverUrl } from "../src/runtime/http-host.js"
import { Metrics } from "../src/runtime/metrics.js"
import { TimeAuth, timeAuthClient, timeAuthServer } from "../src/runtime/rpc-auth.js"
import { rpcRoute } from "../src/runtime/rpc-route.js"
import { makeRpcTcpClient, RpcTcpServer, rpcTcpServerLayer } from "../src/runtime/rpc-tcp.js"

const CALLS = Number(process.env["CALLS"] ?? "2000")
const ROUNDS = Number(process.env["ROUNDS"] ?? "3")
const HTTP = process.env["HTTP"] !== "0"

// What presenced sends: small payload, empty reply.
class BenchRpcs extends RpcGroup.make(
  Rpc.make("Heartbeat", { payload: { login: Schema.String, hostname: Schema.String } })
).middleware(TimeAuth) {}
const handlers = BenchRpcs.toLayer({ Heartbeat: () => Effect.void })
const secret = Redacted.make("bench-secret")
const local = { host: "127.0.0.1", port: 0 }
const payload = { login: "user42", hostname: "pas-r01p42" }

/** The node:net peer: same msgpack codec, a request frame shaped like ours, an Exit reply. */
const netEcho = Effect.acquireRelease(
  Effect.async<{ readonly call: Effect.Effect<void>; readonly close: () => void }>((resume) => {
    const server = net.createServer({ noDelay: true }, (socket) => {
      const parser = RpcSerialization.msgPack.unsafeMake()
      socket.on("data", (chunk) => {
        for (const m of parser.decode(chunk) as Array<{ readonly id: string }>) {
          socket.write(parser.encode({ _tag: "Exit", requestId: m.id, exit: { _tag: "Success", value: null } }) as Uint8Array)
        }
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      const socket = net.createConnection({ host: "127.0.0.1", port, noDelay: true }, () => {
        const parser = RpcSerialization.msgPack.unsafeMake()
        let done: () => void = () => {}
        let id = 0
        socket.on("data", (chunk) => {
          for (const _ of parser.decode(chunk)) done()
        })
        const token = `${Math.floor(Date.now() / 1000)}:${"0".repeat(64)}`
        const call = Effect.async<void>((resume) => {
          done = () => resume(Effect.void)
          const frame = { _tag: "Request", id: String(id++), tag: "Heartbeat", payload, headers: [["x-prolo-auth", token]] }
          socket.write(parser.encode(frame) as Uint8Array)
        })
        resume(Effect.succeed({ call, close: () => (socket.destroy(), server.close()) }))
      })
    })
  }),
  (peer) => Effect.sync(peer.close)
)

/** The group over @effect/platform's Socket protocol, as rpc-tcp.ts was built before. */
const platformTcp = Effect.gen(function* () {
  const ctx = yield* Layer.build(
    RpcServer.layer(BenchRpcs).pipe(
      Layer.provide(handlers),
      Layer.provide(timeAuthServer("bench", secret)),
      Layer.provide(RpcServer.layerProtocolSocketServer),
      Layer.provide(RpcSerialization.layerMsgPack),
      Layer.provideMerge(NodeSocketServer.layer(local))
    )
  )
  const address = Context.get(ctx, SocketServer.SocketServer).address
  if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("no TCP address")
  const client = yield* Layer.build(
    RpcClient.layerProtocolSocket({ retryTransientErrors: true }).pipe(
      Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port: address.port })),
      Layer.provide(RpcSerialization.layerMsgPack),
      Layer.merge(timeAuthClient(secret))
    )
  )
  return yield* RpcClient.make(BenchRpcs).pipe(Effect.provide(client))
})

interface Figures {
  readonly p50: number
  readonly p99: number
  readonly cpuMicros: number
}

const pct = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

const timeCalls = (call: Effect.Effect<void, unknown>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 50; i++) yield* call // warm-up: connection, JIT
    const samples: Array<number> = []
    const cpu = process.cpuUsage()
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      yield* call
      samples.push(performance.now() - t0)
    }
    const used = process.cpuUsage(cpu)
    samples.sort((a, b) => a - b)
    return { p50: pct(samples, 0.5), p99: pct(samples, 0.99), cpuMicros: (used.user + used.system) / CALLS } satisfies Figures
  })

const program = Effect.gen(function* () {
  const ours = yield* Layer.build(rpcTcpServerLayer({ service: "bench", group: BenchRpcs, handlers, secret, listen: local }))
  const oursClient = yield* makeRpcTcpClient(BenchRpcs, { host: "127.0.0.1", port: Context.get(ours, RpcTcpServer).address.port, secret })
  const platform = yield* platformTcp
  const peer = yield* netEcho
  const transports: Array<readonly [string, Effect.Effect<void, unknown>]> = [
    ["net echo", peer.call],
    ["tcp (ours)", oursClient.Heartbeat(payload)],
    ["tcp (platform)", platform.Heartbeat(payload)]
  ]
  if (HTTP) {
    const http = yield* Layer.build(httpHostLayer(rpcRoute({ service: "bench", group: BenchRpcs, handlers, secret }), { listen: local }))
    const url = serverUrl(Context.get(http, HttpServer.HttpServer).address)
    const httpClient = yield* makeRpcClient(BenchRpcs, { url, service: "bench", secret })
    transports.push(["http+ndjson", httpClient.Heartbeat(payload)])
  }
  const all = new Map<string, Array<Figures>>(transports.map(([name]) => [name, []]))
  console.log(`rpc bench: ${ROUNDS} rounds of ${CALLS} sequential calls per transport (client and server in this process)`)
  for (let round = 1; round <= ROUNDS; round++) {
    const line: Array<string> = []
    for (const [name, call] of transports) {
      const f = yield* timeCalls(call)
      all.get(name)!.push(f)
      line.push(`${name} p50 ${f.p50.toFixed(3)} p99 ${f.p99.toFixed(3)} ms ${f.cpuMicros.toFixed(0)} µs cpu`)
    }
    console.log(`  round ${round}: ${line.join(" | ")}`)
  }
  const best = (name: string, key: keyof Figures) => Math.min(...all.get(name)!.map((f) => f[key]))
  const floor = { p50: best("net echo", "p50"), p99: best("net echo", "p99"), cpu: best("net echo", "cpuMicros") }
  for (const [name] of transports) {
    const f = { p50: best(name, "p50"), p99: best(name, "p99"), cpu: best(name, "cpuMicros") }
    console.log(
      `${name.padEnd(15)} best p50 ${f.p50.toFixed(3)} ms p99 ${f.p99.toFixed(3)} ms cpu/call ${f.cpu.toFixed(0)} µs ` +
        `= ${(f.p50 / floor.p50).toFixed(1)}x / ${(f.p99 / floor.p99).toFixed(1)}x / ${(f.cpu / floor.cpu).toFixed(1)}x net echo`
    )
  }
}).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(ActorTree.layer, Metrics.layer)))

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  }
)
