import type { Rpc, RpcGroup } from "@effect/rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { constPing, type FromClientEncoded, type FromServerEncoded, ResponseDefectEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Context, Deferred, Duration, Effect, Either, Exit, FiberId, Layer, Mailbox, type Redacted, Runtime, Schedule, Schema } from "effect"
import * as net from "node:net"
import type { ListenAddress } from "./http-host.js"
import { type Metrics, promCounter } from "./metrics.js"
import { TimeAuth, timeAuthClient, timeAuthServer } from "./rpc-auth.js"
import { checkClientFrame, checkServerFrame } from "./rpc-tcp-frames.js"

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
  /** Requests one connection may have in flight; beyond, its reading pauses. Default 64. */
  readonly maxInFlight?: number
}

/** A listening rpc TCP port. */
export class RpcTcpServer extends Context.Tag("prolo/RpcTcpServer")<
  RpcTcpServer,
  { readonly address: ListenAddress; readonly connections: Effect.Effect<ReadonlyArray<RpcTcpConnectionStats>> }
>() {}

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

/**
 * Writes to one socket: a write happens now and waits only while the socket's buffer is over
 * its high-water mark. Every write blocked at the same time waits on the same 'drain': one pair
 * of listeners per socket, not per write (per write, 200 000 blocked writes cost two listeners
 * each, removed one by one: quadratic, issue 17 item 3).
 */
const makeWriter = (socket: net.Socket, onDrain: () => void = () => {}) => {
  let drained: Deferred.Deferred<void> | undefined
  const wait = () => {
    if (drained !== undefined) return drained
    const d = Deferred.unsafeMake<void>(FiberId.none)
    drained = d
    const done = () => {
      socket.off("drain", done)
      socket.off("close", done)
      drained = undefined
      Deferred.unsafeDone(d, Exit.void)
      onDrain()
    }
    socket.on("drain", done)
    socket.on("close", done)
    return d
  }
  return {
    write: (frame: Uint8Array): Effect.Effect<void> => {
      if (socket.destroyed) return Effect.void
      return socket.write(frame) ? Effect.void : Deferred.await(wait())
    },
    /** The socket's buffer is over its high-water mark: stop producing for it. */
    blocked: () => drained !== undefined || socket.writableNeedDrain
  }
}

/** What one connection to an rpc TCP port holds, for tests and operators. */
export interface RpcTcpConnectionStats {
  readonly id: number
  /** Requests handed to the rpc server so far. */
  readonly admitted: number
  /** Requests handed to the rpc server whose answer is not yet written to the socket. */
  readonly inFlight: number
  /** Frames read but held back: the connection is at its in-flight bound. */
  readonly backlog: number
  /** Reading is paused (in-flight bound reached, or the peer does not read its answers). */
  readonly paused: boolean
  /** The most bytes ever waiting in the socket's send buffer (node's, beyond the kernel's). */
  readonly peakUnsent: number
}

interface Connection {
  readonly id: number
  readonly socket: net.Socket
  readonly parser: RpcSerialization.Parser
  readonly writer: ReturnType<typeof makeWriter>
  backlog: Array<FromClientEncoded>
  admitted: number
  inFlight: number
  peakUnsent: number
  refused: boolean
}

/** Default bound on the requests one TCP connection may have in flight. */
export const DEFAULT_TCP_MAX_IN_FLIGHT = 64

// The server end: one msgpack parser per connection; frames go to the rpc server as they are
// decoded and checked. A connection that sends bytes which are not msgpack, a frame over the
// size limit or a frame that is no rpc message gets a Defect naming the problem and is closed
// (counted in prolo_rpc_tcp_refused_total, logged); other connections are untouched.
//
// Flow control, per connection: at most `maxInFlight` requests are with the rpc server (a
// request leaves when its Exit is written to the socket); frames beyond wait in a backlog and
// the socket stops being read while the backlog is not empty or the socket's send buffer is over
// its high-water mark. A client that pipelines without reading its answers therefore holds at
// most `maxInFlight` answers plus one read chunk of requests, and the kernel's buffers push back
// on it; every other connection is served as usual.
const serverProtocol = (service: string, listen: ListenAddress, maxInFlight: number, knownTag: (tag: string) => boolean) =>
  Effect.gen(function* () {
    const refusedFrames = yield* promCounter({
      name: "prolo_rpc_tcp_refused_total",
      help: "Connections to an rpc TCP port closed for a frame that is not an rpc message, by service",
      labelNames: ["service"]
    })
    const disconnects = yield* Mailbox.make<number>()
    const sockets = new Map<number, Connection>()
    let nextId = 0
    const server = net.createServer({ noDelay: true })
    const protocol = yield* RpcServer.Protocol.make((writeRequest) =>
      Effect.gen(function* () {
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        // Never throws into the socket's handler: a throw there would end the process.
        const dispatch = (id: number, frames: ReadonlyArray<FromClientEncoded>) =>
          run(each(frames, (frame) => Effect.suspend(() => writeRequest(id, frame as FromClientEncoded))).pipe(Effect.catchAllDefect((d) =>
            Effect.logError(`rpc over tcp (${service}): a request crashed the rpc server's reader`, d)
          )))

        const pump = (conn: Connection) => {
          if (conn.refused) return
          let taken = 0
          for (; taken < conn.backlog.length; taken++) {
            if (conn.backlog[taken]!._tag !== "Request") continue
            if (conn.inFlight >= maxInFlight) break
            conn.inFlight++
            conn.admitted++
          }
          if (taken > 0) {
            const batch = conn.backlog.slice(0, taken)
            conn.backlog = taken === conn.backlog.length ? [] : conn.backlog.slice(taken)
            dispatch(conn.id, batch)
          }
          if (conn.backlog.length > 0 || conn.writer.blocked()) conn.socket.pause()
          else if (conn.socket.isPaused()) conn.socket.resume()
        }

        const refuse = (conn: Connection, reason: string) => {
          conn.refused = true
          conn.backlog = []
          refusedFrames.inc({ service })
          run(Effect.logWarning(`rpc over tcp (${service}): connection from ${conn.socket.remoteAddress}:${conn.socket.remotePort} closed: ${reason}`))
          conn.socket.end(conn.parser.encode(ResponseDefectEncoded(`rpc over tcp: ${reason}, connection closed`)) as Uint8Array)
        }

        server.on("connection", (socket) => {
          const id = nextId++
          const conn: Connection = {
            id,
            socket,
            parser: RpcSerialization.msgPack.unsafeMake(),
            writer: makeWriter(socket, () => pump(conn)),
            backlog: [],
            admitted: 0,
            inFlight: 0,
            peakUnsent: 0,
            refused: false
          }
          sockets.set(id, conn)
          socket.on("data", (chunk) => {
            if (conn.refused) return
            let frames: ReadonlyArray<unknown>
            try {
              frames = conn.parser.decode(chunk)
            } catch (cause) {
              return refuse(conn, `unreadable frame: ${describe(cause)}`)
            }
            for (const frame of frames) {
              const checked = checkClientFrame(frame, knownTag)
              if (Either.isLeft(checked)) return refuse(conn, `not an rpc message: ${checked.left}`)
              conn.backlog.push(checked.right)
            }
            pump(conn)
          })
          // a reset by the peer is an ordinary way for a client to go; 'close' follows
          socket.on("error", () => {})
          socket.on("close", () => {
            conn.refused = true
            conn.backlog = []
            sockets.delete(id)
            disconnects.unsafeOffer(id)
          })
        })
        return {
          disconnects,
          send: (clientId: number, response: FromServerEncoded) =>
            Effect.suspend(() => {
              const conn = sockets.get(clientId)
              if (conn === undefined) return Effect.void
              let frame: Uint8Array
              try {
                frame = conn.parser.encode(response) as Uint8Array
              } catch (cause) {
                frame = conn.parser.encode(ResponseDefectEncoded(cause)) as Uint8Array
              }
              const written = conn.writer.write(frame)
              conn.peakUnsent = Math.max(conn.peakUnsent, conn.socket.writableLength)
              if (response._tag !== "Exit") return written
              return Effect.ensuring(
                written,
                Effect.sync(() => {
                  conn.inFlight = Math.max(0, conn.inFlight - 1)
                  pump(conn)
                })
              )
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
    const connections = Effect.sync((): ReadonlyArray<RpcTcpConnectionStats> =>
      [...sockets.values()].map((c) => ({
        id: c.id,
        admitted: c.admitted,
        inFlight: c.inFlight,
        backlog: c.backlog.length,
        paused: c.socket.isPaused(),
        peakUnsent: c.peakUnsent
      }))
    )
    return { protocol, address, connections }
  })

/** Serves an rpc group on its own TCP port; outputs `RpcTcpServer` to learn the bound address. */
export const rpcTcpServerLayer = <Rpcs extends Rpc.Any, EH, RH>(options: RpcTcpServerOptions<Rpcs, EH, RH>) => {
  const listening = Layer.scopedContext(
    Effect.map(
      serverProtocol(options.service, options.listen, options.maxInFlight ?? DEFAULT_TCP_MAX_IN_FLIGHT, (tag) => options.group.requests.has(tag)),
      ({ address, connections, protocol }) =>
        Context.make(RpcServer.Protocol, protocol).pipe(Context.add(RpcTcpServer, RpcTcpServer.of({ address, connections })))
    )
  )
  // disableFatalDefects: a handler's defect ends its own request with an Exit (the client's call
  // dies) instead of a bare Defect that fails every call of the connection and never ends the
  // request, which would hold one of the connection's in-flight slots forever.
  return RpcServer.layer(options.group, { disableTracing: true, disableFatalDefects: true }).pipe(
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
      let current: { readonly socket: net.Socket; readonly parser: RpcSerialization.Parser; readonly writer: ReturnType<typeof makeWriter> } | undefined
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
          const conn = { socket, parser: RpcSerialization.msgPack.unsafeMake(), writer: makeWriter(socket) }
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
            // Checked before the rpc client sees them: it throws on a malformed request id.
            const checked: Array<FromServerEncoded> = []
            for (const frame of frames) {
              const ok = checkServerFrame(frame)
              if (Either.isLeft(ok)) {
                closedBy = `closed: a frame from the server that is no rpc message: ${ok.left}`
                socket.destroy()
                return
              }
              checked.push(ok.right)
            }
            if (checked.length > 0) run(each(checked, (frame) => Effect.suspend(() => writeResponse(frame as FromServerEncoded))))
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
          Effect.flatMap(connection, (conn) => conn.writer.write(conn.parser.encode(request) as Uint8Array)),
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

