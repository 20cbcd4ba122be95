import { Cause, Clock, Context, Duration, Effect, Layer } from "effect"
import { ActorTree } from "./actor-tree.js"

// OTP's restart intensity: more than `maxRestarts` restarts within `within` means
// restarting does not help, so the failure goes up to the parent.
export interface Intensity {
  readonly maxRestarts: number
  readonly within: Duration.DurationInput
}

export const defaultIntensity: Intensity = { maxRestarts: 5, within: "10 seconds" }

// The intensity of the actors that set none: a node provides node.yml's `restarts` within
// `restartWindowSeconds` (see node-profile.ts); without it, `defaultIntensity`.
export class RestartIntensity extends Context.Reference<RestartIntensity>()("prolo/RestartIntensity", {
  defaultValue: (): Intensity => defaultIntensity
}) {}

// Sysexits EX_SOFTWARE: systemd's Restart=on-failure brings the process back.
export const ROOT_ESCALATION_EXIT_CODE = 70

export const rootPath = "/root"

// What a child hands its parent when it gives up.
export interface Escalation {
  readonly path: string
  readonly restarts: number
  readonly within: Duration.Duration
  readonly cause: Cause.Cause<unknown>
}

// The parent of whatever is spawned in its context: children take `path` as the
// prefix of their own and call `escalate` once, as they stop. `escalate` must not
// wait for the escalating child to end (it is called from that child's fiber).
export class ActorSupervisor extends Context.Tag("prolo/ActorSupervisor")<
  ActorSupervisor,
  {
    readonly path: string
    readonly escalate: (escalation: Escalation) => Effect.Effect<void>
  }
>() {}

// Validates intensity settings once, where they are given, rather than letting a
// bad value silently disable supervision. A bad setting is a programming error,
// hence a defect with a precise message.
export const decodeIntensity = (where: string, intensity: Intensity) =>
  Effect.suspend(() => {
    const within = Duration.decodeUnknown(intensity.within)
    if (!Number.isInteger(intensity.maxRestarts) || intensity.maxRestarts < 0) {
      return Effect.dieMessage(`${where}: maxRestarts must be a non-negative integer, got ${intensity.maxRestarts}`)
    }
    if (within._tag === "None" || !Duration.isFinite(within.value) || Duration.toMillis(within.value) <= 0) {
      return Effect.dieMessage(
        `${where}: restart window must be a positive finite duration, got ${String(intensity.within)}`
      )
    }
    return Effect.succeed({ maxRestarts: intensity.maxRestarts, within: within.value })
  })

// A sliding window of restart times, read from `Clock`. `record` notes one restart
// and tells whether the intensity is now exceeded.
export const makeRestartWindow = (intensity: { readonly maxRestarts: number; readonly within: Duration.Duration }) => {
  const windowMillis = Duration.toMillis(intensity.within)
  let times: Array<number> = []
  return {
    record: Effect.map(Clock.currentTimeMillis, (now) => {
      times = times.filter((t) => now - t < windowMillis)
      times.push(now)
      return { exceeded: times.length > intensity.maxRestarts, restartsInWindow: times.length }
    })
  }
}

// A name becomes one path segment whatever it holds (a user name with "/", an empty key).
export const childPath = (parent: string, name: string) => `${parent}/${encodeURIComponent(name) || "%22%22"}`

// A supervisor shows in the actor tree for its scope, `handled` counting the escalations it
// received; the returned function counts one.
const showSupervisor = (path: string) =>
  Effect.gen(function* () {
    const tree = yield* ActorTree
    const startedAt = yield* Clock.currentTimeMillis
    let escalations = 0
    yield* tree.registerScoped(
      path,
      Effect.map(Clock.currentTimeMillis, (now) => ({
        path,
        mailboxDepth: 0,
        handled: escalations,
        restarts: 0,
        ageSeconds: Math.max(0, (now - startedAt) / 1000),
        kind: "supervisor" as const
      }))
    )
    return () => {
      escalations++
    }
  })

// A named level of the tree for a subsystem's standalone actors (`/root/mdb/...`).
// Actors restart themselves; one that escalates has given up, and a group cannot
// rebuild it without knowing how, so the escalation goes on up unchanged.
// Give it to the subsystem's layer (`Layer.provide(supervisorGroup("mdb"))`): with
// `Effect.provide` it would leave the tree as soon as that one effect ends.
export const supervisorGroup = (name: string) =>
  Layer.scoped(
    ActorSupervisor,
    Effect.gen(function* () {
      const parent = yield* ActorSupervisor
      const path = childPath(parent.path, name)
      const received = yield* showSupervisor(path)
      return {
        path,
        escalate: (e: Escalation) =>
          Effect.suspend(() => {
            received()
            return parent.escalate(e)
          })
      }
    })
  )

// The top of every actor tree. Reaching it means a subsystem cannot heal itself, so
// the process ends and its service manager starts a fresh one. It shows in the tree
// as `/root`, with `handled` counting the escalations it received.
// Logs the escalation, then runs `exit` with the exit code. Tests record instead of exiting.
const layerWithExit = (exit: (code: number, escalation: Escalation) => Effect.Effect<void>) =>
    Layer.scoped(
      ActorSupervisor,
      Effect.gen(function* () {
        const received = yield* showSupervisor(rootPath)
        return {
          path: rootPath,
          escalate: (e: Escalation) =>
            Effect.suspend(() => {
              received()
              return Effect.logError(
                `root supervisor: ${e.path} exceeded ${e.restarts} restarts within ${Duration.format(e.within)}; ` +
                  `ending the process with code ${ROOT_ESCALATION_EXIT_CODE}`,
                e.cause
              ).pipe(Effect.zipRight(exit(ROOT_ESCALATION_EXIT_CODE, e)))
            })
        }
      })
    )

export const RootSupervisor = {
  layerWithExit,
  // Production: exit at once. Finalizers do not run; the escalating subsystem is
  // already broken and the service manager restarts the whole process cleanly.
  layer: layerWithExit((code) =>
    Effect.sync(() => {
      process.exit(code)
    })
  )
}
