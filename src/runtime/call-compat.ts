import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option, Schema } from "effect"
import { bodyLimitFor, boundedBody } from "./http-body.js"
import { jsonTooDeep, parseJsonBounded } from "./json-depth.js"
import { pythonJson } from "./python-json.js"
import { canonicalJson } from "./rpc-auth-message.js"
import { endpointMessage } from "./timeauth.js"

// The original prologin-RPC call surface (rpc-and-auth.md §3), shared by every subsystem that
// still answers it (MDB at `/call/<method>`, UDB at `/udb/call/<method>`): any verb, a POST body
// `{"args": [...], "kwargs": {...}, "hmac": ...}`, answers in the original's result/exception
// envelopes. Each subsystem gives only its method table.

// Exactly `application/json`: the Python client compares the header verbatim.
const respond = (status: number, body: unknown) =>
  HttpServerResponse.text(`${pythonJson(body)}\n`, { status, contentType: "application/json" })

const result = (data: unknown) => respond(200, { type: "result", data })

/** The original's exception envelope; protocol errors carry an empty traceback, as there. */
const exception = (status: number, exnType: string, message: string) =>
  respond(status, { type: "exception", exn_type: exnType, exn_message: message, exn_traceback: [] })

/** A call refused before reaching the subsystem, answered with the original's exception envelope. */
export class CallError extends Schema.TaggedError<CallError>()("CallError", {
  status: Schema.Int,
  exnType: Schema.String,
  message: Schema.String
}) {}

export const callError = (status: number, exnType: string, message: string) => new CallError({ status, exnType, message })
export const typeError = (message: string) => callError(500, "TypeError", message)

export interface Call {
  readonly args: ReadonlyArray<unknown>
  readonly kwargs: Readonly<Record<string, unknown>>
  /** The token of the authenticated methods (`query_private`), as sent. */
  readonly hmac: unknown
  /** The caller's address, when the server knows it (rate limits). */
  readonly remoteAddress?: string
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

// Non-POST requests call with no arguments and no token, as the original.
const readCall = (request: HttpServerRequest.HttpServerRequest, maxDepth: number): Effect.Effect<Call, CallError> =>
  Effect.map(readArguments(request, maxDepth), (call) =>
    Option.match(request.remoteAddress, { onNone: () => call, onSome: (remoteAddress) => ({ ...call, remoteAddress }) })
  )

const readArguments = (request: HttpServerRequest.HttpServerRequest, maxDepth: number): Effect.Effect<Call, CallError> =>
  request.method !== "POST"
    ? Effect.succeed({ args: [], kwargs: {}, hmac: undefined })
    : Effect.gen(function* () {
        const text = yield* Effect.orElseSucceed(request.text, () => "")
        if (jsonTooDeep(text, maxDepth) !== undefined) return yield* callError(400, "ValueError", `JSON nested deeper than ${maxDepth} levels`)
        const parsed = parseJsonBounded(text, maxDepth)
        if (!parsed.ok) return yield* callError(500, "JSONDecodeError", parsed.message)
        const body = parsed.value
        if (!isObject(body)) return yield* typeError("the request body must be a JSON object")
        const args = body.args ?? []
        const kwargs = body.kwargs ?? {}
        if (!Array.isArray(args)) return yield* typeError("args must be a JSON list")
        if (!isObject(kwargs)) return yield* typeError("kwargs must be a JSON object")
        return { args, kwargs, hmac: body.hmac }
      })

/**
 * What the token of an authenticated call signs: the method's path as mounted on the node, a
 * newline, and the canonical JSON (rpc-auth-message.ts: sorted keys, no spaces, non-ASCII as
 * `\uXXXX`) of `{"args": [...], "kwargs": {...}}` as received, e.g.
 * `/udb/call/query_private\n{"args":[],"kwargs":{"login":"jdoe"}}`. The original signed the
 * method name alone, so one token opened the method for any arguments.
 */
export const callMessage = (path: string, call: Call): string =>
  endpointMessage(path, canonicalJson({ args: call.args, kwargs: call.kwargs }))

/** The keyword arguments of a method that takes no positional ones. */
export const noPositional = (method: string, call: Call): Effect.Effect<Readonly<Record<string, unknown>>, CallError> =>
  call.args.length === 0
    ? Effect.succeed(call.kwargs)
    : Effect.fail(typeError(`${method}() takes 0 positional arguments but ${call.args.length} were given`))

type Failure = { readonly _tag: string; readonly message: string }

export type CallMethod<E> = (call: Call, method: string) => Effect.Effect<unknown, CallError | E>

export interface CallSurface<E extends Failure> {
  /** Where the methods are mounted, e.g. `/call`. */
  readonly prefix: `/${string}`
  readonly methods: Readonly<Record<string, CallMethod<E>>>
  /** The exception class names the original raised for each error tag (clients match on them). */
  readonly exnTypes: Readonly<Record<string, string>>
  /** The error that means the database failed: logged, and answered without its details. */
  readonly databaseError: { readonly tag: E["_tag"]; readonly exnType: string; readonly log: string }
}

/** Mounts the methods at `<prefix>/<method>` on the node's router; unknown methods are the original's `MethodError`. */
export const addCallRoutes = <E extends Failure>(router: HttpLayerRouter.HttpRouter, surface: CallSurface<E>): Effect.Effect<void> =>
  Effect.flatMap(bodyLimitFor((l) => l.callBodyBytes), (bounds) => router.add("*", `${surface.prefix}/:method`, boundedBody(bounds)(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.gen(function* () {
      const { method = "" } = yield* HttpLayerRouter.params
      const run = Object.hasOwn(surface.methods, method) ? surface.methods[method] : undefined
      if (run === undefined) return yield* callError(404, "MethodError", method)
      const call = yield* readCall(request, bounds.limits.maxJsonDepth)
      return result(yield* run(call, method))
    }).pipe(
      Effect.catchAll((e: CallError | E): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
        if (e instanceof CallError) return Effect.succeed(exception(e.status, e.exnType, e.message))
        if (e._tag === surface.databaseError.tag) {
          return Effect.as(Effect.logError(surface.databaseError.log, e), exception(500, surface.databaseError.exnType, "database error"))
        }
        return Effect.succeed(exception(500, surface.exnTypes[e._tag] ?? e._tag, e.message))
      })
    )
  ))))
