import type { Rpc, RpcGroup } from "@effect/rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { constPing, type FromClientEncoded, type FromServerEncoded, ResponseDefectEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Context, Duration, Effect, Layer, Mailbox, type Redacted, Runtime, Schedule, Schema } from "effect"
import * as net from "node:net"
import type { ListenAddress } from "./http-host.js"
import type { Metrics } from "./metrics.js"
import { TimeAuth, timeAuthClient, timeAuthServer } from "./rpc-auth.js"

// The second transport, for latency-sensitive pairs (presenced -> presence, master <-> workers):
// one long-lived TCP connection per client, msgpack frames, the same TimeAuth tokens as over
// HTTP (carried in each request's headers). The group and handlers are the same values the
// HTTP route takes: a service can be offered on both transports at once.
//
// The socket ends are our own, on node:net, rather than @effect/platform's Socket: that one
// forks a fiber per received chunk and suspends every write until node's write callback,
// which with its latch and FiberSet made a loopback echo cost ~10x a plain node:net echo of
// the same frames (`npm run bench:rpc`). Here a received frame is handed to the rpc server or
// client at once and a write is a plain `socket.write` (waiting only when the kernel buffer
// is full). Nagle is off (small request/response frames). Tracing spans are off: nothing
// collects them, and they cost a span per call on each side.

/** Rpcs of `group` are checked with this service's secret (several groups on one port). */
export interface RpcTcpSigner {
  readonly service: string
  readonly group: { readonly requests: ReadonlyMap<string, unknown> }
  readonly secret: Redacted.Redacted<string>
}

export interface RpcTcpServerOptions<Rpcs extends Rpc.Any, EH, RH> {
  readonly service: string
  readonly group: RpcGroup.RpcGroup<Rpcs>
  readonly handlers: Layer.Layer<Rpc.ToHandler<Rpcs>, EH, RH>
  /** Checks every rpc of `group`, except those of a group in `signers`. */
  readonly secret: Redacted.Redacted<string>
  /** Groups merged into `group` whose rpcs are signed with another secret, as over HTTP. */
  readonly signers?: ReadonlyArray<RpcTcpSigner>
  /** Its own port, beside the node's HTTP one; port 0 picks a free one (read it from `RpcTcpServer`). */
  readonly listen: ListenAddress
}

/** A listening rpc TCP port. */
export class RpcTcpServer extends Context.Tag("prolo/RpcTcpServer")<RpcTcpServer, { readonly address: ListenAddress }>() {}

/** The port cannot be bound (in use, address not local); nothing is served. */
export class RpcTcpListenError extends Schema.TaggedError<RpcTcpListenError>()("RpcTcpListenError", {
  host: Schema.String,
  port: Schema.Number,
  message: Schema.String
}) {}

// One TimeAuth for the port: each rpc is checked by the service its group belongs to, so
// rejections are counted under that service's name.
const timeAuthByGroup = (
  service: string,
  secret: Redacted.Redacted<string>,
  signers: ReadonlyArray<RpcTcpSigner>
): Layer.Layer<TimeAuth, never, Metrics> =>
  signers.length === 0
    ? timeAuthServer(service, secret)
    : Layer.effect(
        TimeAuth,
        Effect.gen(function* () {
          const check = (s: string, k: Redacted.Redacted<string>) =>
            Effect.scoped(Effect.map(Layer.build(timeAuthServer(s, k)), Context.get(TimeAuth)))
          const main = yield* check(service, secret)
          const byTag = new Map<string, typeof main>()
          for (const signer of signers) {
            const auth = yield* check(signer.service, signer.secret)
            for (const tag of signer.group.requests.keys()) byTag.set(tag, auth)
          }
          return TimeAuth.of((options) => (byTag.get(options.rpc._tag) ?? main)(options))
        })
      )

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** The frames of one received chunk, in order, on one fiber (started at once, in this tick). */
const each = (frames: ReadonlyArray<unknown>, f: (frame: unknown) => Effect.Effect<void>): Effect.Effect<void> =>
  frames.length === 1 ? f(frames[0]) : Effect.forEach(frames, f, { discard: true })

/** Writes now; waits only when the socket's buffer is over its high-water mark. */
const writeFrame = (socket: net.Socket, frame: Uint8Array): Effect.Effect<void> =>
  socket.write(frame)
    ? Effect.void
    : Effect.async<void>((resume) => {
        const done = () => {
          socket.off("drain", done)
          socket.off("close", done)
          resume(Effect.void)
        }
        socket.on("drain", done)
        socket.on("close", done)
      })

// The server end: one msgpack parser per connection; frames go to the rpc server as they are
// decoded. A connection that sends bytes which are not msgpack (or a frame over the size
// limit) gets a Defect naming the problem and is closed; other connections are untouched.
const serverProtocol = (listen: ListenAddress) =>
  Effect.gen(function* () {
    const disconnects = yield* Mailbox.make<number>()
    const sockets = new Map<number, { readonly socket: net.Socket; readonly parser: RpcSerialization.Parser }>()
    let nextId = 0
    const server = net.createServer({ noDelay: true })
    const protocol = yield* RpcServer.Protocol.make((writeRequest) =>
      Effect.gen(function* () {
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        server.on("connection", (socket) => {
          const id = nextId++
          const parser = RpcSerialization.msgPack.unsafeMake()
          sockets.set(id, { socket, parser })
          let unreadable = false
          socket.on("data", (chunk) => {
            if (unreadable) return
            let frames: ReadonlyArray<unknown>
            try {
              frames = parser.decode(chunk)
            } catch (cause) {
              unreadable = true
              socket.end(parser.encode(ResponseDefectEncoded(`rpc over tcp: unreadable frame, connection closed: ${describe(cause)}`)) as Uint8Array)
              return
            }
            if (frames.length > 0) run(each(frames, (frame) => writeRequest(id, frame as FromClientEncoded)))
          })
          // a reset by the peer is an ordinary way for a client to go; 'close' follows
          socket.on("error", () => {})
          socket.on("close", () => {
            sockets.delete(id)
            disconnects.unsafeOffer(id)
          })
        })
        return {
          disconnects,
          send: (clientId: number, response: FromServerEncoded) =>
            Effect.suspend(() => {
              const client = sockets.get(clientId)
              if (client === undefined) return Effect.void
              let frame: Uint8Array
              try {
                frame = client.parser.encode(response) as Uint8Array
              } catch (cause) {
                frame = client.parser.encode(ResponseDefectEncoded(cause)) as Uint8Array
              }
              return writeFrame(client.socket, frame)
            }),
          end: (clientId: number) => Effect.sync(() => sockets.get(clientId)?.socket.end()),
          clientIds: Effect.sync(() => new Set(sockets.keys()) as ReadonlySet<number>),
          initialMessage: Effect.succeedNone,
          supportsAck: true,
          supportsTransferables: false,
          supportsSpanPropagation: false
        }
      })
    )
    const address = yield* Effect.acquireRelease(
      Effect.async<ListenAddress, RpcTcpListenError>((resume) => {
        const failed = (e: Error) =>
          resume(Effect.fail(new RpcTcpListenError({ host: listen.host, port: listen.port, message: `cannot listen on ${listen.host}:${listen.port}: ${e.message}` })))
        server.once("error", failed)
        server.listen(listen.port, listen.host, () => {
          server.off("error", failed)
          const bound = server.address()
          resume(Effect.succeed(typeof bound === "object" && bound !== null ? { host: bound.address, port: bound.port } : listen))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          for (const { socket } of sockets.values()) socket.destroy()
        })
    )
    return { protocol, address }
  })

/** Serves an rpc group on its own TCP port; outputs `RpcTcpServer` to learn the bound address. */
export const rpcTcpServerLayer = <Rpcs extends Rpc.Any, EH, RH>(options: RpcTcpServerOptions<Rpcs, EH, RH>) => {
  const listening = Layer.scopedContext(
    Effect.map(serverProtocol(options.listen), ({ address, protocol }) =>
      Context.make(RpcServer.Protocol, protocol).pipe(Context.add(RpcTcpServer, RpcTcpServer.of({ address })))
    )
  )
  return RpcServer.layer(options.group, { disableTracing: true }).pipe(
    Layer.provide(options.handlers),
    Layer.provide(timeAuthByGroup(options.service, options.secret, options.signers ?? [])),
    Layer.provideMerge(listening),
    Layer.map(Context.pick(RpcTcpServer))
  )
}

export interface RpcTcpClientOptions {
  readonly host: string
  readonly port: number
  readonly secret: Redacted.Redacted<string>
  /** Bound on opening the connection. Default 5 s. */
  readonly connectTimeout?: Duration.DurationInput
  /** A ping every this; a connection that answered nothing since the last one is closed. Default 10 s. */
  readonly pingInterval?: Duration.DurationInput
}

// The client end: the connection is opened by the first call and reopened by the first call
// after it drops; calls in flight on a dropped connection fail with an RpcClientError.
const clientProtocol = (options: RpcTcpClientOptions) =>
  RpcClient.Protocol.make((writeResponse) =>
    Effect.gen(function* () {
      const run = Runtime.runFork(yield* Effect.runtime<never>())
      const where = `${options.host}:${options.port}`
      let current: { readonly socket: net.Socket; readonly parser: RpcSerialization.Parser } | undefined
      let heard = true
      const lost = (message: string) =>
        run(writeResponse({ _tag: "ClientProtocolError", error: new RpcClientError({ reason: "Protocol", message }) }))

      const open = Effect.async<NonNullable<typeof current>, RpcClientError>((resume) => {
        const socket = net.createConnection({ host: options.host, port: options.port, noDelay: true })
        const refused = (e: Error) =>
          resume(Effect.fail(new RpcClientError({ reason: "Protocol", message: `rpc over tcp: cannot connect to ${where}: ${e.message}`, cause: e })))
        socket.once("error", refused)
        socket.once("connect", () => {
          socket.off("error", refused)
          const conn = { socket, parser: RpcSerialization.msgPack.unsafeMake() }
          let closedBy = "closed by the server"
          socket.on("data", (chunk) => {
            heard = true
            let frames: ReadonlyArray<unknown>
            try {
              frames = conn.parser.decode(chunk)
            } catch (cause) {
              closedBy = `closed: unreadable frame from the server: ${describe(cause)}`
              socket.destroy()
              return
            }
            if (frames.length > 0) run(each(frames, (frame) => writeResponse(frame as FromServerEncoded)))
          })
          socket.on("error", (e) => {
            closedBy = `failed: ${e.message}`
          })
          socket.on("close", () => {
            if (current === conn) current = undefined
            lost(`rpc over tcp: connection to ${where} ${closedBy}`)
          })
          current = conn
          heard = true
          resume(Effect.succeed(conn))
        })
        return Effect.sync(() => socket.destroy())
      }).pipe(
        Effect.timeoutFail({
          duration: options.connectTimeout ?? Duration.seconds(5),
          onTimeout: () => new RpcClientError({ reason: "Protocol", message: `rpc over tcp: no connection to ${where} within the connect timeout` })
        })
      )
      const lock = yield* Effect.makeSemaphore(1)
      const connection = Effect.suspend(() => (current !== undefined ? Effect.succeed(current) : lock.withPermits(1)(Effect.suspend(() => current !== undefined ? Effect.succeed(current) : open))))

      yield* Effect.addFinalizer(() => Effect.sync(() => current?.socket.destroy()))
      // The peer may vanish without a FIN (power cut, cable): a ping unanswered for a whole
      // interval closes the connection, failing the calls waiting on it.
      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.sync(() => {
            const conn = current
            if (conn === undefined) return
            if (!heard) {
              conn.socket.destroy(new Error("no answer to a ping"))
              return
            }
            heard = false
            conn.socket.write(conn.parser.encode(constPing) as Uint8Array)
          }),
          Schedule.spaced(options.pingInterval ?? Duration.seconds(10))
        )
      )
      return {
        send: (request: FromClientEncoded) =>
          Effect.flatMap(connection, (conn) => writeFrame(conn.socket, conn.parser.encode(request) as Uint8Array)),
        supportsAck: true,
        supportsTransferables: false
      }
    })
  )

/**
 * A typed client over one TCP connection, closed with the scope. The connection is opened by
 * the first call and reopened by the next call after a drop (calls in flight fail with an
 * RpcClientError; a call while the server is down fails at once with one).
 */
export const makeRpcTcpClient = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, options: RpcTcpClientOptions) =>
  // Built into the caller's scope: `Effect.provide(layer)` would close the connection as soon
  // as the client is made.
  Effect.flatMap(
    Layer.build(Layer.merge(Layer.scoped(RpcClient.Protocol, clientProtocol(options)), timeAuthClient(options.secret))),
    (context) => RpcClient.make(group, { disableTracing: true }).pipe(Effect.provide(context))
  )

