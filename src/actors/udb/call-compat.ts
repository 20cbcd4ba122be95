import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, type Redacted, Schema } from "effect"
import { check } from "../../runtime/timeauth.js"
import { pythonJson } from "../mdb/call-compat.js"
import { Udb } from "./service.js"

// The original prologin-RPC surface of UDB (rpc-and-auth.md §3), for programs that still call
// it: `query(**filters)` public, `query_private(**filters)` with an `hmac` token over the method
// name made with `udb-client-auth.yml: shared_secret`.
//
// Mounted at `/udb/call/<method>`: MDB owns `/call/<method>` on a node, and the original
// reached each through its own vhost, so nginx's `udb` vhost maps `/call/` to `/udb/call/`:
//   location /call/ { proxy_pass http://127.0.0.1:20000/udb/call/; }

export const UDB_CALL_PREFIX = "/udb/call"

// Exactly `application/json`: the Python client compares the header verbatim.
const respond = (status: number, body: unknown) =>
  HttpServerResponse.text(`${pythonJson(body)}\n`, { status, contentType: "application/json" })

const exception = (status: number, exnType: string, message: string) =>
  respond(status, { type: "exception", exn_type: exnType, exn_message: message, exn_traceback: [] })

class CallError extends Schema.TaggedError<CallError>()("CallError", {
  status: Schema.Int,
  exnType: Schema.String,
  message: Schema.String
}) {}

const callError = (status: number, exnType: string, message: string) => new CallError({ status, exnType, message })

interface Call {
  readonly args: ReadonlyArray<unknown>
  readonly kwargs: Readonly<Record<string, unknown>>
  readonly hmac: unknown
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

// Non-POST requests call with no arguments and no token, as the original.
const readCall = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Call, CallError> =>
  request.method !== "POST"
    ? Effect.succeed({ args: [], kwargs: {}, hmac: undefined })
    : Effect.gen(function* () {
        const text = yield* Effect.orElseSucceed(request.text, () => "")
        const body = yield* Effect.try({
          try: (): unknown => JSON.parse(text),
          catch: (e) => callError(500, "JSONDecodeError", e instanceof Error ? e.message : String(e))
        })
        if (!isObject(body)) return yield* callError(500, "TypeError", "the request body must be a JSON object")
        const args = body.args ?? []
        const kwargs = body.kwargs ?? {}
        if (!Array.isArray(args)) return yield* callError(500, "TypeError", "args must be a JSON list")
        if (!isObject(kwargs)) return yield* callError(500, "TypeError", "kwargs must be a JSON object")
        return { args, kwargs, hmac: body.hmac }
      })

const METHODS = ["query", "query_private"] as const

// The exception class names the original raised (clients match on them).
const EXN_TYPE: Record<string, string> = { InvalidFilter: "ValueError", UdbUnavailable: "RuntimeError" }

export const callCompatRoutes = (secret: Redacted.Redacted<string>): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Udb> =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function* () {
      const udb = yield* Udb
      yield* router.add("*", `${UDB_CALL_PREFIX}/:method`, (request) =>
        Effect.gen(function* () {
          const { method = "" } = yield* HttpLayerRouter.params
          if (!(METHODS as ReadonlyArray<string>).includes(method)) return yield* callError(404, "MethodError", method)
          const call = yield* readCall(request)
          if (method === "query_private") {
            if (typeof call.hmac !== "string" || call.hmac === "") return yield* callError(400, "MissingToken", method)
            yield* check(call.hmac, secret, method).pipe(Effect.mapError(() => callError(403, "BadToken", method)))
          }
          if (call.args.length > 0) {
            return yield* callError(500, "TypeError", `${method}() takes 0 positional arguments but ${call.args.length} were given`)
          }
          const users = method === "query" ? yield* udb.query(call.kwargs) : yield* udb.queryPrivate(call.kwargs)
          return respond(200, { type: "result", data: users })
        }).pipe(
          Effect.catchAll((e) => {
            if (e._tag === "CallError") return Effect.succeed(exception(e.status, e.exnType, e.message))
            if (e._tag === "UdbUnavailable") {
              return Effect.as(Effect.logError("udb /call: database error", e), exception(500, "RuntimeError", "database error"))
            }
            return Effect.succeed(exception(500, EXN_TYPE[e._tag] ?? e._tag, e.message))
          })
        )
      )
    })
  )
