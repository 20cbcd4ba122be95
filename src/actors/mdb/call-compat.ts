import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, type Layer } from "effect"
import { addCallRoutes, type Call, type CallError, callError, type CallMethod, noPositional, typeError } from "../../runtime/call-compat.js"
import type { InvalidFilter, Registration, RegistrationDisabled } from "../../protocols/mdb.js"
import { RegistrationGate } from "./registration-gate.js"
import { Mdb, type WriteError } from "./service.js"

type MdbCallError = InvalidFilter | RegistrationDisabled | WriteError

// The original prologin-RPC surface of MDB, for the programs that still call it:
// `curl http://mdb/call/query`, ansible's dynamic inventory, old netboot/HFS clients.
// Any verb on /call/<method>; a POST body `{"args": [...], "kwargs": {...}}` (rpc-and-auth.md §3).
// Every method of the original MDB is public, so no token is checked here; the writes an
// operator makes go through the authenticated rpc group instead. `register` passes the
// RegistrationGate first (off unless configured; rate-limited per caller address and overall:
// 429 with the reason in the original's exception envelope).

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

export const callCompatRoutes: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Mdb | RegistrationGate> = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const mdb = yield* Mdb
    const gate = yield* RegistrationGate
    const methods: Record<string, CallMethod<MdbCallError | SqlError>> = {
      query: (call, method) => Effect.flatMap(noPositional(method, call), mdb.query),
      switches: (call, method) => Effect.flatMap(noPositional(method, call), mdb.switches),
      ansible: (call, method) =>
        Effect.flatMap(noPositional(method, call), (kwargs): Effect.Effect<unknown, CallError | SqlError> =>
          Object.keys(kwargs).length === 0 ? mdb.ansible : Effect.fail(typeError("ansible() takes no arguments"))
        ),
      register: (call) =>
        Effect.flatMap(registration(call), (r) =>
          gate.admit(call.remoteAddress).pipe(
            Effect.catchTag("RegistrationRateLimited", (e) => Effect.fail(callError(429, "RuntimeError", e.message))),
            Effect.zipRight(mdb.register(r))
          )
        )
    }
    yield* addCallRoutes(router, {
      prefix: "/call",
      methods,
      exnTypes: EXN_TYPE,
      databaseError: { tag: "SqlError", exnType: "InternalError", log: "mdb /call: database error" }
    })
  })
)
