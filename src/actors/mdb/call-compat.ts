import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Schema } from "effect"
import type { SqlError } from "@effect/sql/SqlError"
import type { InvalidFilter, Registration, RegistrationDisabled } from "../../protocols/mdb.js"
import { Mdb, type WriteError } from "./service.js"

type MdbCallError = InvalidFilter | RegistrationDisabled | WriteError

// The original prologin-RPC surface of MDB, for the programs that still call it:
// `curl http://mdb/call/query`, ansible's dynamic inventory, old netboot/HFS clients.
// Any verb on /call/<method>; a POST body `{"args": [...], "kwargs": {...}}` (rpc-and-auth.md §3).
// Every method of the original MDB is public, so no token is checked here; the writes an
// operator makes go through the authenticated rpc group instead.

/** Python's `json.dumps` defaults: `", "` / `": "` separators, non-ASCII as `\uXXXX`. */
export const pythonJson = (value: unknown): string => {
  if (value === null || value === undefined) return "null"
  if (typeof value === "string") {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
  }
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "NaN"
  if (typeof value === "boolean") return value ? "true" : "false"
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`
  if (typeof value === "object") {
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`)
      .join(", ")}}`
  }
  return "null"
}

// Exactly `application/json`: the Python client compares the header verbatim.
const respond = (status: number, body: unknown) =>
  HttpServerResponse.text(`${pythonJson(body)}\n`, { status, contentType: "application/json" })

const result = (data: unknown) => respond(200, { type: "result", data })

/** The original's exception envelope; protocol errors carry an empty traceback, as there. */
const exception = (status: number, exnType: string, message: string) =>
  respond(status, { type: "exception", exn_type: exnType, exn_message: message, exn_traceback: [] })

/** A call refused before reaching MDB, answered with the original's exception envelope. */
class CallError extends Schema.TaggedError<CallError>()("CallError", {
  status: Schema.Int,
  exnType: Schema.String,
  message: Schema.String
}) {}

const callError = (status: number, exnType: string, message: string) => new CallError({ status, exnType, message })
const typeError = (message: string) => callError(500, "TypeError", message)

interface Call {
  readonly args: ReadonlyArray<unknown>
  readonly kwargs: Readonly<Record<string, unknown>>
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const readCall = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Call, CallError> =>
  request.method !== "POST"
    ? Effect.succeed({ args: [], kwargs: {} })
    : Effect.gen(function* () {
        const text = yield* Effect.orElseSucceed(request.text, () => "")
        const body = yield* Effect.try({
          try: (): unknown => JSON.parse(text),
          catch: (e) => callError(500, "JSONDecodeError", e instanceof Error ? e.message : String(e))
        })
        if (!isObject(body)) return yield* typeError("the request body must be a JSON object")
        const args = body.args ?? []
        const kwargs = body.kwargs ?? {}
        if (!Array.isArray(args)) return yield* typeError("args must be a JSON list")
        if (!isObject(kwargs)) return yield* typeError("kwargs must be a JSON object")
        return { args, kwargs }
      })

const noPositional = (method: string, call: Call) =>
  call.args.length === 0
    ? Effect.succeed(call.kwargs)
    : Effect.fail(typeError(`${method}() takes 0 positional arguments but ${call.args.length} were given`))

const REGISTER_ARGS = ["hostname", "mac", "rfs", "hfs", "room", "mtype"] as const

// netboot passes rfs/hfs as ints; prolorpc would pass strings of digits.
const registration = (call: Call): Effect.Effect<Registration, CallError> => {
  if (call.args.length > REGISTER_ARGS.length) {
    return Effect.fail(typeError(`register() takes 6 positional arguments but ${call.args.length} were given`))
  }
  const named: Record<string, unknown> = { ...call.kwargs }
  for (const [i, value] of call.args.entries()) {
    const name = REGISTER_ARGS[i]!
    if (Object.hasOwn(call.kwargs, name)) return Effect.fail(typeError(`register() got multiple values for argument '${name}'`))
    named[name] = value
  }
  const unknown = Object.keys(named).find((k) => !(REGISTER_ARGS as ReadonlyArray<string>).includes(k))
  if (unknown !== undefined) return Effect.fail(typeError(`register() got an unexpected keyword argument '${unknown}'`))
  const missing = REGISTER_ARGS.filter((k) => named[k] === undefined || named[k] === null)
  if (missing.length > 0) {
    return Effect.fail(typeError(`register() missing required arguments: ${missing.map((m) => `'${m}'`).join(", ")}`))
  }
  const text = (k: string) => (typeof named[k] === "string" ? Effect.succeed(named[k]) : Effect.fail(typeError(`register(): ${k} must be a string`)))
  const int = (k: string) => {
    const v = named[k]
    const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]{1,9}$/.test(v) ? Number(v) : NaN
    return Number.isSafeInteger(n) ? Effect.succeed(n) : Effect.fail(typeError(`register(): ${k} must be an integer`))
  }
  return Effect.all({
    hostname: text("hostname"),
    mac: text("mac"),
    rfs: int("rfs"),
    hfs: int("hfs"),
    room: text("room"),
    mtype: text("mtype")
  })
}

// The exception class names the original raised for each case (clients match on them).
const EXN_TYPE: Record<string, string> = {
  InvalidFilter: "ValueError",
  InvalidField: "ValidationError",
  AlreadyTaken: "ValidationError",
  PoolExhausted: "RuntimeError",
  RegistrationDisabled: "RuntimeError"
}

const dispatch = (mdb: Mdb["Type"], method: string, call: Call): Effect.Effect<unknown, CallError | MdbCallError | SqlError> => {
  switch (method) {
    case "query":
      return Effect.flatMap(noPositional(method, call), mdb.query)
    case "switches":
      return Effect.flatMap(noPositional(method, call), mdb.switches)
    case "ansible":
      return Effect.flatMap(noPositional(method, call), (kwargs): Effect.Effect<unknown, CallError | SqlError> =>
        Object.keys(kwargs).length === 0 ? mdb.ansible : Effect.fail(typeError("ansible() takes no arguments"))
      )
    case "register":
      return Effect.flatMap(registration(call), mdb.register)
    default:
      return Effect.fail(callError(404, "MethodError", method))
  }
}

export const callCompatRoutes: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Mdb> = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const mdb = yield* Mdb
    yield* router.add("*", "/call/:method", (request) =>
      Effect.gen(function* () {
        const { method = "" } = yield* HttpLayerRouter.params
        if (!/^[0-9a-zA-Z_]+$/.test(method)) return yield* callError(404, "MethodError", method)
        const call = yield* readCall(request)
        return result(yield* dispatch(mdb, method, call))
      }).pipe(
        Effect.catchAll((e) => {
          if (e._tag === "CallError") return Effect.succeed(exception(e.status, e.exnType, e.message))
          if (e._tag === "SqlError") {
            return Effect.as(Effect.logError("mdb /call: database error", e), exception(500, "InternalError", "database error"))
          }
          return Effect.succeed(exception(500, EXN_TYPE[e._tag] ?? e._tag, e.message))
        })
      )
    )
  })
)
