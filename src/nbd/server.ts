import * as net from "node:net"
import { Context, Duration, Effect, Fiber, Layer, Runtime } from "effect"
import { makeBufferPool, type PoolStats } from "./buffer-pool.js"
import {
  type Connection,
  type ConnectionEvent,
  type ConnectionLimits,
  type ConnectionStats,
  defaultLimits,
  makeConnection
} from "./connection.js"
import { NbdListenError } from "./errors.js"
import { type ExportAccess, NbdExports } from "./exports.js"
import { releaseFreedMemory } from "./release-memory.js"
import { readIntoSharedBuffer } from "./socket-reads.js"
import { armDeadPeer, type DeadPeerTimeouts } from "./tcp-dead-peer.js"

// The NBD listener: a node:net server whose lifetime is a Scope. Closing the scope stops
// accepting, lets every connection answer what it already received, closes them, and
// destroys whoever is still there after `shutdownTimeout`. Each connection runs on socket
// callbacks (connection.ts); Effect only manages the lifecycle, the handshake timer and logs.

export interface NbdServerOptions {
  readonly host: string
  // 0 picks a free port (see NbdServer.address).
  readonly port: number
  readonly limits?: Partial<ConnectionLimits>
  readonly maxConnections?: number
  // A client that has not finished option haggling by then is dropped.
  readonly handshakeTimeout?: Duration.DurationInput
  readonly shutdownTimeout?: Duration.DurationInput
  // Data buffers all connections may hold together, in flight or kept for reuse
  // (buffer-pool.ts); default `defaultMemoryBudget`.
  readonly memoryBudget?: number
  // After this long without a buffer taken, the pool drops its free buffers and the
  // process gives freed memory back to the system (`releaseMemory`).
  readonly idleTrimAfter?: Duration.DurationInput
  readonly releaseMemory?: () => void
  // Who may attach what, by peer address (exports.ts `ExportAccess`); everyone when absent.
  readonly access?: ExportAccess
  // Cut a connection whose peer died (no FIN, no RST) within a bound (tcp-dead-peer.ts);
  // none when absent (the kernel's defaults: hours).
  readonly deadPeer?: DeadPeerTimeouts
}

// 4 MiB: nbdcopy's 4 connections keep 1 MiB each in flight (4 of its 256 KiB requests per
// connection) at no measured cost in copy throughput or CPU per GiB (bench:nbd-interleave,
// against 16 MiB in the same run), while 16 MiB let a 1 GiB copy grow RSS by 26 MiB over
// idle, twice nbdkit's peak. 50 clients of random 4 KiB I/O, 16 in flight each, need
// 3.2 MiB: they fit.
export const defaultMemoryBudget = 4 * 1024 * 1024

// Size of the read buffer all sockets share, hence of the most a paused connection keeps
// outside the budget (connection.ts stashes the rest of the read that paused it). A read
// lands there only for request headers and option data: WRITE payloads are received
// straight into their pooled buffers, and the header after a WRITE alone (nextRead). So
// it needs room for a burst of headers (64 in flight × 28 bytes) and a small payload
// caught behind them; 256 KiB let 50 paused connections keep up to 12.5 MiB.
export const sharedReadBytes = 16 * 1024

export class NbdServer extends Context.Tag("prolo/NbdServer")<
  NbdServer,
  {
    readonly address: { readonly host: string; readonly port: number }
    readonly connections: Effect.Effect<number>
    // Per-connection load, for metrics and for tests of the memory bounds.
    readonly stats: Effect.Effect<ReadonlyArray<ConnectionStats>>
    // The buffer pool's accounting across connections.
    readonly memory: Effect.Effect<PoolStats>
  }
>() {}

const logEvent = (event: ConnectionEvent, remote: string) => {
  switch (event._tag) {
    case "Attached":
      return Effect.logDebug(`nbd client attached to ${event.export}@${event.generation}`).pipe(Effect.annotateLogs("remote", remote))
    case "Dropped":
      return Effect.logDebug(`nbd connection closed: ${event.reason}`).pipe(Effect.annotateLogs("remote", remote))
    case "BackendError":
      return Effect.logWarning(`nbd backend error on ${event.export}: command ${event.command} → errno ${event.errno}: ${event.error}`).pipe(
        Effect.annotateLogs("remote", remote)
      )
  }
}

export const make = (options: NbdServerOptions) =>
  Effect.gen(function* () {
    const { table } = yield* NbdExports
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const limits: ConnectionLimits = { ...defaultLimits, ...options.limits }
    const pool = makeBufferPool(options.memoryBudget ?? defaultMemoryBudget)
    const idleTrimAfter = Duration.decode(options.idleTrimAfter ?? "10 seconds")
    const releaseMemory = options.releaseMemory ?? releaseFreedMemory
    const handshakeTimeout = Duration.decode(options.handshakeTimeout ?? "30 seconds")
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "10 seconds")
    const live = new Set<Connection>()
    // Every socket reads into this one buffer; connections copy what they keep.
    const readBuffer = Buffer.allocUnsafeSlow(sharedReadBytes)
    let shuttingDown = false

    const onConnection = (socket: net.Socket) => {
      socket.setNoDelay(true)
      const remote = `${socket.remoteAddress}:${socket.remotePort}`
      if (options.deadPeer !== undefined) {
        const failed = armDeadPeer(socket, options.deadPeer)
        if (failed !== undefined) runFork(Effect.logWarning(`nbd: no dead-peer timeouts on a connection: ${String(failed)}`).pipe(Effect.annotateLogs("remote", remote)))
      }
      let onData = (_chunk: Buffer) => {}
      let nextRead = (shared: Buffer) => shared
      const sharedReads = readIntoSharedBuffer(
        socket,
        readBuffer,
        (chunk) => onData(chunk),
        () => nextRead(readBuffer)
      )
      const access = options.access
      const peer = socket.remoteAddress ?? ""
      const conn = makeConnection(socket, {
        ...(access === undefined ? {} : { access: (wireName: string) => access(peer, wireName) }),
        chunksReused: sharedReads,
        table,
        pool,
        limits,
        shuttingDown: () => shuttingDown,
        onEvent: (event) => {
          runFork(logEvent(event, remote))
        }
      })
      live.add(conn)
      const timer = runFork(
        Effect.sleep(handshakeTimeout).pipe(
          Effect.andThen(
            Effect.sync(() => {
              if (!conn.inTransmission()) conn.drop("handshake timeout")
            })
          )
        )
      )
      onData = conn.onData
      nextRead = conn.nextRead
      if (!sharedReads) socket.on("data", conn.onData)
      socket.on("end", conn.onEnd)
      socket.on("error", (err) => {
        runFork(Effect.logDebug(`nbd socket error: ${err.message}`).pipe(Effect.annotateLogs("remote", remote)))
      })
      socket.on("close", () => {
        live.delete(conn)
        conn.onClose()
        runFork(Fiber.interrupt(timer))
      })
      socket.resume()
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<net.Server, NbdListenError>((resume) => {
        const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true })
        server.maxConnections = options.maxConnections ?? 1024
        server.on("connection", onConnection)
        const onListenError = (err: Error) =>
          resume(Effect.fail(new NbdListenError({ host: options.host, port: options.port, reason: err.message })))
        server.once("error", onListenError)
        server.listen(options.port, options.host, () => {
          server.off("error", onListenError)
          server.on("error", (err) => runFork(Effect.logError(`nbd listener error: ${err.message}`)))
          resume(Effect.succeed(server))
        })
      }),
      (server) =>
        Effect.gen(function* () {
          shuttingDown = true
          yield* Effect.log(`nbd server stopping: ${live.size} connection(s) to drain`)
          // Stop accepting now; the callback fires once every connection is gone.
          const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()))
          const conns = [...live]
          const drained = yield* Effect.promise(() => Promise.all(conns.map((c) => c.shutdown()))).pipe(
            Effect.timeout(shutdownTimeout),
            Effect.as(true),
            Effect.catchAll(() => Effect.succeed(false))
          )
          if (!drained) {
            yield* Effect.logWarning(`nbd shutdown: dropping ${live.size} connection(s) still busy after ${Duration.format(shutdownTimeout)}`)
            for (const c of [...live]) c.drop("server shutdown timeout")
          }
          yield* Effect.promise(() => listenerClosed)
        })
    )

    // Load fell when a whole period passed without a buffer taken: keep nothing for
    // reuse, and have freed memory returned to the system once per quiet spell.
    yield* Effect.gen(function* () {
      let seen = pool.stats().takes
      let busySinceRelease = false
      for (;;) {
        yield* Effect.sleep(idleTrimAfter)
        const takes = pool.stats().takes
        if (takes !== seen) {
          seen = takes
          busySinceRelease = true
          continue
        }
        if (!busySinceRelease) continue
        busySinceRelease = false
        const dropped = pool.trim()
        releaseMemory()
        yield* Effect.logDebug(`nbd idle: dropped ${dropped} bytes of free buffers, memory given back`)
      }
    }).pipe(Effect.forkScoped)

    const addr = server.address() as net.AddressInfo
    return {
      address: { host: addr.address, port: addr.port },
      connections: Effect.sync(() => live.size),
      stats: Effect.sync(() => [...live].map((c) => c.stats())),
      memory: Effect.sync(() => pool.stats())
    }
  })

export const layer = (options: NbdServerOptions) => Layer.scoped(NbdServer, make(options))
