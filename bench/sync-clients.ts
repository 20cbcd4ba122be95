// Child process of bench/sync.ts: N subscribers and, when asked, one subscriber that stops
// reading after its snapshot. Reports to the parent over IPC: "ready" once every subscriber
// holds its snapshot, then the latencies it measured.
//
// CLIENT=raw (default): each subscriber is a bare websocket speaking the follow route's messages
// (request, one frame per message, consumed count every half window), so that 200 of them cost
// the measuring process little and the figures are the hub's and the transport's. CLIENT=follow: each is a full SyncClient.follow (state,
// apply, handler), the cost a real follower pays.
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import { Effect, Fiber, Logger, LogLevel, Redacted, Stream } from "effect"
import { makeSyncClient } from "../src/actors/sync/client.js"
import { followSocketUrl, websocketConnector } from "../src/actors/sync/connection.js"
import { FOLLOW_WINDOW, subscribeMessage } from "../src/protocols/sync.js"
import { generate } from "../src/runtime/timeauth.js"

const [url = "", countText = "200", stallText = "0", secretText = ""] = process.argv.slice(2)
const count = Number(countText)
const stall = stallText === "1"
const secret = Redacted.make(secretText)
const mode = process.env["CLIENT"] ?? "raw"
const now = () => performance.timeOrigin + performance.now()
const send = (message: unknown) => process.send?.(message)

const decoder = new TextDecoder()
const latencies: Array<number> = []
let ready = 0
let resumes = 0
const onReady = () => {
  if (++ready === count) send({ type: "ready" })
}

interface BareSocket {
  onopen: (() => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  send: (data: string) => void
  close: () => void
}

/** A subscriber in ~20 lines: subscribe, acknowledge what it read (or stop after the first). */
const rawSubscriber = (make: (url: string) => BareSocket, token: string, stalled: boolean) => {
  const ws = make(followSocketUrl(url, "bench"))
  ws.onopen = () => ws.send(JSON.stringify({ token }))
  let consumed = 0
  let acked = 0
  ws.onmessage = (event) => {
    const data = event.data
    const text = typeof data === "string" ? data : decoder.decode(data as ArrayBuffer | Uint8Array)
    const frame = JSON.parse(text) as { _tag: string; updates?: Array<{ data: { t?: number } }> }
    const at = now()
    if (frame._tag === "Snapshot") {
      if (stalled) send({ type: "stalled" })
      else onReady()
    } else if (frame._tag === "Batch" && !stalled) {
      for (const u of frame.updates ?? []) if (typeof u.data.t === "number") latencies.push(at - u.data.t)
    }
    if (stalled) return // stopped reading: no more acknowledgements
    if (++consumed - acked >= FOLLOW_WINDOW / 2) {
      acked = consumed
      ws.send(String(consumed))
    }
  }
  return ws
}

const raw = Effect.gen(function* () {
  const make = (yield* Socket.WebSocketConstructor) as unknown as (url: string) => BareSocket
  const token = yield* generate(secret, subscribeMessage("bench"))
  const sockets = Array.from({ length: count }, () => rawSubscriber(make, token, false))
  if (stall) sockets.push(rawSubscriber(make, token, true))
  return () => sockets.forEach((s) => s.close())
}).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))

const follow = Effect.gen(function* () {
  const client = makeSyncClient({
    connect: websocketConnector(url),
    credentials: () => ({ subscribe: secret }),
    keyFields: { bench: "key" },
    backoff: { initial: "50 millis", max: "1 second" }
  })
  const fibers: Array<Fiber.RuntimeFiber<never, unknown>> = []
  for (let i = 0; i < count; i++) {
    let seen = false
    fibers.push(
      yield* Effect.fork(
        client.follow("bench", (state, metadata, info) =>
          Effect.sync(() => {
            if (info.kind === "snapshot") {
              if (!seen) onReady()
              else resumes++
              seen = true
              return
            }
            const at = now()
            for (const key of metadata.keys()) {
              const t = state.get(key)?.["t"]
              if (typeof t === "number") latencies.push(at - t)
            }
          })
        )
      )
    )
  }
  if (stall) {
    const token = yield* generate(secret, subscribeMessage("bench"))
    yield* Effect.forkDaemon(
      Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* websocketConnector(url)
          const pull = yield* Stream.toPull(connection.subscribe({ topic: "bench", token }))
          yield* pull
          send({ type: "stalled" })
          yield* Effect.never
        })
      )
    )
  }
  return () => fibers.forEach((f) => Effect.runFork(Fiber.interrupt(f)))
})

const program = Effect.gen(function* () {
  const stop = yield* mode === "follow" ? follow : raw
  yield* Effect.async<void>((resume) => {
    process.on("message", (m: unknown) => {
      if (process.env["BENCH_DEBUG"]) process.stderr.write(`child got ${String(m)} (${latencies.length} latencies)\n`)
      if (m === "report") resume(Effect.void)
    })
  })
  stop()
  // Exit once the (large) report is written to the channel, cleanly so that --cpu-prof can
  // write its profile.
  process.send?.({ type: "report", latencies, resumes }, undefined, {}, () => process.exit(0))
})

Effect.runFork(program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
