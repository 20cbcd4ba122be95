import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { MdbRpcs } from "../../protocols/mdb.js"
import { RegistrationGate } from "./registration-gate.js"
import { Mdb } from "./service.js"

// A database failure is not the caller's fault and not theirs to handle: it is logged here
// and reaches the client as a defect.
const dbDefect = <A, E>(self: Effect.Effect<A, E | SqlError>): Effect.Effect<A, Exclude<E, SqlError>> =>
  Effect.catchIf(
    self,
    (e): e is SqlError => typeof e === "object" && e !== null && "_tag" in e && e._tag === "SqlError",
    (e) => Effect.zipRight(Effect.logError("mdb: database error", e), Effect.die(e))
  ) as Effect.Effect<A, Exclude<E, SqlError>>

export const MdbHandlers = MdbRpcs.toLayer(
  Effect.gen(function* () {
    const mdb = yield* Mdb
    const gate = yield* RegistrationGate
    return MdbRpcs.of({
      query: ({ filters }) => dbDefect(mdb.query(filters)),
      switches: ({ filters }) => dbDefect(mdb.switches(filters)),
      ansible: () => dbDefect(mdb.ansible),
      // The rpc knows no caller address: the global limit only.
      register: (r) => Effect.zipRight(gate.admit(undefined), dbDefect(mdb.register(r))),
      settings: () => dbDefect(mdb.settings),
      addMachine: (m) => dbDefect(mdb.addMachine(m)),
      updateMachine: ({ hostname, changes }) => dbDefect(mdb.updateMachine(hostname, changes)),
      deleteMachine: ({ hostname }) => dbDefect(mdb.deleteMachine(hostname)),
      addSwitch: (s) => dbDefect(mdb.addSwitch(s)),
      deleteSwitch: ({ name }) => dbDefect(mdb.deleteSwitch(name)),
      setSetting: ({ key, value }) => dbDefect(mdb.setSetting(key, value))
    })
  })
)
