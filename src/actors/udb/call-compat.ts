import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect, type Layer, type Redacted } from "effect"
import { addCallRoutes, type Call, callError, callMessage, noPositional } from "../../runtime/call-compat.js"
import { accept } from "../../runtime/timeauth.js"
import { Udb } from "./service.js"

// The original prologin-RPC surface of UDB (rpc-and-auth.md §3), for programs that still call
// it: `query(**filters)` public, `query_private(**filters)` with an `hmac` token made with
// `udb-client-auth.yml: shared_secret` over `callMessage` (the path and the arguments; the
// original signed the method name alone), accepted once.
//
// Mounted at `/udb/call/<method>`: MDB owns `/call/<method>` on a node, and the original
// reached each through its own vhost, so nginx's `udb` vhost maps `/call/` to `/udb/call/`:
//   location /call/ { proxy_pass http://127.0.0.1:20000/udb/call/; }

export const UDB_CALL_PREFIX = "/udb/call"

// The exception class names the original raised (clients match on them).
const EXN_TYPE: Record<string, string> = { InvalidFilter: "ValueError", UdbUnavailable: "RuntimeError" }

export const callCompatRoutes = (secret: Redacted.Redacted<string>): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Udb> =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function* () {
      const udb = yield* Udb
      const authenticated = (call: Call, method: string) =>
        typeof call.hmac !== "string" || call.hmac === ""
          ? Effect.fail(callError(400, "MissingToken", method))
          : accept(call.hmac, secret, callMessage(`${UDB_CALL_PREFIX}/${method}`, call)).pipe(
              Effect.tapError((e) => Effect.logWarning(`udb ${UDB_CALL_PREFIX}/${method}: token refused (${e.reason})`)),
              Effect.mapError(() => callError(403, "BadToken", method))
            )
      yield* addCallRoutes(router, {
        prefix: UDB_CALL_PREFIX,
        methods: {
          query: (call, method) => Effect.flatMap(noPositional(method, call), udb.query),
          query_private: (call, method) =>
            authenticated(call, method).pipe(Effect.zipRight(noPositional(method, call)), Effect.flatMap(udb.queryPrivate))
        },
        exnTypes: EXN_TYPE,
        databaseError: { tag: "UdbUnavailable", exnType: "RuntimeError", log: "udb /call: database error" }
      })
    })
  )
