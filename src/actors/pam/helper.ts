import { Clock, Duration, Effect, Either, Fiber, FiberSet, Schema, type Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { encodeLine, encodeStatus, MAX_REQUEST_BYTES, parseRequest } from "./helper-protocol.js"
import { type PamBase, type PamRequest, runPamStage } from "./run-stage.js"
import { EXIT } from "./stages.js"

// The resident login helper: prolo-pam's stages served on a root-only unix socket, so that a
// login costs a shell and a socat per PAM stage instead of a Node.js start and a bundle load
// (~250 ms of CPU each, which made 20 simultaneous logins on one box take 6 s). The clients
// (presence, MDB, HFS) and the code are warm; each stage runs as in process, one at a time per
// login, different logins in parallel. A stage, once started, runs to its end even if the
// caller goes away, and the node waits for it when it stops: nothing is left half-attached (the
// next stage, or the next login, finds a complete state in the session file).

export class LoginHelperListenError extends Schema.TaggedError<LoginHelperListenError>()("LoginHelperListenError", {
  path: Schema.String,
  message: Schema.String
}) {}

export interface LoginHelperOptions {
  readonly socketPath: string
  readonly base: PamBase
  /** Bound on the arrival of the request once connected (Clock). Default 10 s. */
  readonly requestTimeout?: Duration.DurationInput
  /** How long stopping waits for the stages in flight (Clock). Default 25 s. */
  readonly drainTimeout?: Duration.DurationInput
  /** Each connection accepted (/__actors). */
  readonly onStart?: () => void
  /** Each answered connection (tests, /__actors, metrics): its request, status and time (Clock). */
  readonly onAnswer?: (answer: { readonly request: PamRequest | null; readonly code: number; readonly seconds: number }) => void
}

const readRequest = (socket: net.Socket): Effect.Effect<PamRequest, string> =>
  Effect.async<PamRequest, string>((resume) => {
    let bytes = Buffer.alloc(0)
    const done = (r: Effect.Effect<PamRequest, string>) => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
      resume(r)
    }
    const onData = (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk])
      const parsed = parseRequest(bytes)
      if (Either.isLeft(parsed)) return done(Effect.fail(parsed.left))
      if (parsed.right !== undefined) done(Effect.succeed(parsed.right))
    }
    const onEnd = () => done(Effect.fail(bytes.length === 0 ? "empty request" : "request cut short (fewer than four NUL-terminated fields)"))
    socket.on("data", onData)
    socket.on("end", onEnd)
    socket.on("close", onEnd)
    return Effect.sync(() => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
    })
  })

/** One stage at a time per login: a key's semaphore lives while someone holds or waits for it. */
const makeExclusive = () => {
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let lock = locks.get(key)
      if (lock === undefined) locks.set(key, (lock = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }))
      const held = lock
      held.users++
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            if (--held.users === 0) locks.delete(key)
          })
        )
      )
    })
}

const write = (socket: net.Socket, text: string) =>
  Effect.sync(() => {
    if (!socket.destroyed && socket.writable) socket.write(text)
  })

/** Removes a socket file nobody listens on; fails if someone does, or if it is not a socket. */
const clearStaleSocket = (socketPath: string): Effect.Effect<void, LoginHelperListenError> =>
  Effect.gen(function* () {
    const stat = yield* Effect.sync(() => fs.lstatSync(socketPath, { throwIfNoEntry: false }))
    if (stat === undefined) return
    if (!stat.isSocket()) return yield* new LoginHelperListenError({ path: socketPath, message: `${socketPath} exists and is not a socket: not replaced` })
    const answered = yield* Effect.async<boolean>((resume) => {
      const probe = net.createConnection({ path: socketPath })
      probe.once("connect", () => (probe.destroy(), resume(Effect.succeed(true))))
      probe.once("error", () => resume(Effect.succeed(false)))
    })
    if (answered) return yield* new LoginHelperListenError({ path: socketPath, message: `another login helper listens on ${socketPath}` })
    yield* Effect.sync(() => fs.rmSync(socketPath, { force: true }))
  })

/** Serves the stages on `socketPath` for the lifetime of the scope (the socket file goes with it). */
export const serveLoginHelper = (options: LoginHelperOptions): Effect.Effect<void, LoginHelperListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const { socketPath, base } = options
    const timeout = Duration.decode(options.requestTimeout ?? "10 seconds")
    const exclusive = makeExclusive()
    const running = new Set<Fiber.RuntimeFiber<number>>()
    const drain = Duration.decode(options.drainTimeout ?? "25 seconds")
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)<never>()
    const answer = (socket: net.Socket, request: PamRequest | null, code: number, started: number) =>
      Effect.zipRight(
        write(socket, encodeStatus(code)),
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            socket.end()
            options.onAnswer?.({ request, code, seconds: (now - started) / 1000 })
          })
        )
      )
    const serve = (socket: net.Socket) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const request = yield* readRequest(socket).pipe(
          Effect.timeoutFail({ duration: timeout, onTimeout: () => `no complete request within ${Duration.format(timeout)}` }),
          Effect.either
        )
        if (Either.isLeft(request)) {
          yield* write(socket, encodeLine(`Login impossible: prolo-pam helper: ${request.left}`))
          return yield* answer(socket, null, EXIT.systemError, started)
        }
        const say = (line: string) => write(socket, encodeLine(line))
        // Not a child of this connection: a caller going away, or the node stopping, must not
        // stop a stage half-way (a home attached and no session file); the release below waits.
        const stage = yield* Effect.forkDaemon(exclusive(request.right.user, runPamStage(base, request.right, say)))
        running.add(stage)
        stage.addObserver(() => running.delete(stage))
        const code = yield* Fiber.join(stage)
        yield* answer(socket, request.right, code, started)
      })

    // The directory is the state directory (root-only): nobody else can reach the socket.
    yield* Effect.sync(() => fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 }))
    yield* clearStaleSocket(socketPath)
    const server = net.createServer({ allowHalfOpen: true })
    server.on("connection", (socket) => {
      socket.on("error", () => {})
      options.onStart?.()
      run(serve(socket).pipe(Effect.ensuring(Effect.sync(() => socket.end()))))
    })
    yield* Effect.acquireRelease(
      Effect.async<void, LoginHelperListenError>((resume) => {
        server.once("error", (e) => resume(Effect.fail(new LoginHelperListenError({ path: socketPath, message: `cannot listen on ${socketPath}: ${e.message}` }))))
        server.listen(socketPath, () => {
          fs.chmodSync(socketPath, 0o600)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.zipRight(
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            fs.rmSync(socketPath, { force: true })
          }),
          // Stages in flight end before the node does (bounded: under the unit's TimeoutStopSec).
          Effect.ignore(Effect.timeout(Fiber.awaitAll([...running]), drain))
        )
    )
  })
