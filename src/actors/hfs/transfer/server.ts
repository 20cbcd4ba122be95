import { Effect, FiberSet, Schema, type Scope } from "effect"
import * as net from "node:net"
import { warmHashPool } from "./hash-pool.js"
import { serveConnection, type SentHome, type SourceOptions } from "./source.js"
import type { TransferError } from "./errors.js"

// The source HFS's transfer listener: plain node:net, one fiber per connection, each
// connection served on its own (a bad one is closed and the others go on). Bound for the
// lifetime of the caller's scope; closing it cuts every transfer in flight (the destination
// resumes later from its journal).

export class TransferListenError extends Schema.TaggedError<TransferListenError>()("TransferListenError", {
  host: Schema.String,
  port: Schema.Number,
  message: Schema.String
}) {}

export interface TransferServerOptions extends SourceOptions {
  readonly host: string
  /** 0 picks a free port (read it from the result). */
  readonly port: number
  /** Each finished connection, successful or not (metrics, logs, tests). */
  readonly onDone?: (outcome: { readonly ok: SentHome } | { readonly error: TransferError }) => void
}

export interface TransferServer {
  readonly host: string
  readonly port: number
}

export const transferServer = (options: TransferServerOptions): Effect.Effect<TransferServer, TransferListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)<never>()
    const sockets = new Set<net.Socket>()
    const server = net.createServer({ noDelay: true })
    server.on("connection", (socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
      run(
        serveConnection(socket, options).pipe(
          Effect.tap((ok) => Effect.sync(() => options.onDone?.({ ok }))),
          Effect.tapError((error) =>
            Effect.zipRight(
              Effect.sync(() => options.onDone?.({ error })),
              Effect.logWarning(`home transfer from this HFS failed: ${error.message}`)
            )
          ),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => socket.destroySoon()))
        )
      )
    })
    return yield* Effect.acquireRelease(
      Effect.async<TransferServer, TransferListenError>((resume) => {
        const failed = (e: Error) =>
          resume(Effect.fail(new TransferListenError({ host: options.host, port: options.port, message: `cannot listen on ${options.host}:${options.port}: ${e.message}` })))
        server.once("error", failed)
        server.listen(options.port, options.host, () => {
          server.off("error", failed)
          const a = server.address() as net.AddressInfo
          warmHashPool()
          resume(Effect.succeed({ host: a.address, port: a.port }))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          for (const s of sockets) s.destroy()
        })
    )
  })
