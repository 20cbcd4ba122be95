import { Cause, Effect, Layer } from "effect"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { loadPamSetup } from "./base.js"
import { longLivedClients } from "./clients.js"
import { helperSocketOf } from "./config.js"
import { serveLoginHelper } from "./helper.js"
import { loginMetrics } from "./metrics.js"
import { type PamBase, PAM_STAGES } from "./run-stage.js"
import { lookupAccount } from "./stages.js"

// `prolo-node --layer login` on a user machine: the resident login helper (helper.ts) on
// pam.yml's `helper_socket`, in `/__actors` as `/root/login/socket` (stages answered, stages
// running). Its own role and unit (etc/systemd/prolo-node@login.service.d): it mounts, attaches
// block devices and kills the user's processes, which the `user` node must not be able to.

/**
 * The first login of a machine is its helper's first use of each code path: with the whole room
 * at 9:00, that cold start fell on every machine at once. So the helper walks the read-only part
 * of a login when it starts (hours before): the account lookup, and MDB's answer for this
 * machine (the rpc client's code is the same for every call). Presence and the HFS have no call
 * a machine may make without changing something, so their connections open at the first login.
 * A failure (the gateway still booting) only means a colder first login.
 */
const warmUp = (base: PamBase) =>
  Effect.gen(function* () {
    yield* lookupAccount("root")
    yield* Effect.scoped(Effect.flatMap(base.clients.mdb, (c) => c.query({ filters: { hostname: base.hostname } })))
  }).pipe(
    Effect.timeout("60 seconds"),
    Effect.catchAllCause((cause) => Effect.logDebug(`login helper: warm-up incomplete: ${Cause.pretty(cause).split("\n")[0]}`))
  )

export const LoginLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const setup = yield* loadPamSetup
    const socketPath = helperSocketOf(setup.profile)
    const load = { running: 0, handled: 0 }
    const metrics = yield* loginMetrics
    yield* Effect.logInfo(`login helper: prolo-pam stages of ${setup.hostname} on ${socketPath}`)
    const serve = Effect.flatMap(longLivedClients(setup), (clients) =>
      Effect.zipRight(
        Effect.forkScoped(warmUp({ ...setup, clients })),
        serveLoginHelper({
          socketPath,
          base: { ...setup, clients },
          onStart: () => void load.running++,
          onAnswer: ({ request, code, seconds }) => {
            load.running = Math.max(0, load.running - 1)
            load.handled++
            // Bad requests count as stage "invalid": the label set stays the three stages and it.
            const stage = request === null ? "invalid" : (PAM_STAGES as ReadonlyArray<string>).includes(request.stage) ? request.stage : "other"
            metrics.record(stage, code, seconds)
          }
        })
      )
    )
    return Layer.scopedDiscard(
      supervisedLoop("socket", Effect.zipRight(serve, Effect.never), {
        probe: Effect.sync(() => ({ mailboxDepth: load.running, handled: load.handled }))
      })
    )
  })
).pipe(Layer.provide(supervisorGroup("login")))
