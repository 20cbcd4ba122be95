import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { MdbRpcs, MdbUnavailable } from "../../protocols/mdb.js"
import { RegistrationGate } from "./registration-gate.js"
import { Mdb } from "./service.js"

// A database failure (down, or no answer within the query timeout) is not the caller's fault:
// it is logged here and answered as `MdbUnavailable`, which the caller may retry. Nothing was
// changed: every write runs in one transaction.
const unavailable = <A, E>(self: Effect.Effect<A, E | SqlError>): Effect.Effect<A, Exclude<E, SqlError> | MdbUnavailable> =>
  Effect.catchIf(
    self,
    (e): e is SqlError => typeof e === "object" && e !== null && "_tag" in e && e._tag === "SqlError",
    (e) =>
      Effect.zipRight(
        Effect.logError("mdb: database error", e),
        Effect.fail(new MdbUnavailable({ message: `machine database unavailable: ${e.message}; retry` }))
      )
  ) as Effect.Effect<A, Exclude<E, SqlError> | MdbUnavailable>

export const MdbHandlers = MdbRpcs.toLayer(
  Effect.gen(function* () {
    const mdb = yield* Mdb
    const gate = yield* RegistrationGate
    return MdbRpcs.of({
      query: ({ filters }) => unavailable(mdb.query(filters)),
      switches: ({ filters }) => unavailable(mdb.switches(filters)),
      ansible: () => unavailable(mdb.ansible),
      // The rpc knows no caller address: the global limit only.
      register: (r) => Effect.zipRight(gate.admit(undefined), unavailable(mdb.register(r))),
      settings: () => unavailable(mdb.settings),
      addMachine: (m) => unavailable(mdb.addMachine(m)),
      updateMachine: ({ hostname, changes }) => unavailable(mdb.updateMachine(hostname, changes)),
      deleteMachine: ({ hostname }) => unavailable(mdb.deleteMachine(hostname)),
      addSwitch: (s) => unavailable(mdb.addSwitch(s)),
      deleteSwitch: ({ name }) => unavailable(mdb.deleteSwitch(name)),
      setSetting: ({ key, value }) => unavailable(mdb.setSetting(key, value))
    })
  })
)
