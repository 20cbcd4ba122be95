import { Context, Duration, Effect, Layer, type Scope } from "effect"

// What `/__ping` reports: "pong" while every registered probe passes, else 503 naming each
// subsystem that is degraded and why (a database down or stalled, ...). A subsystem registers
// its probe for as long as its scope lives. Outside a node (a test building one layer) the
// default registry keeps nothing, and `/__ping` answers "pong" as before.

export interface Degraded {
  readonly name: string
  readonly reason: string
}

export interface HealthService {
  readonly register: (name: string, probe: Effect.Effect<void, string>) => Effect.Effect<void, never, Scope.Scope>
  /** Runs every probe (concurrently, each bounded by `PROBE_TIMEOUT`); the failing ones. */
  readonly degraded: Effect.Effect<ReadonlyArray<Degraded>>
}

/** A probe that does not answer within this is a failing one (a stalled database, say). */
export const PROBE_TIMEOUT = Duration.seconds(2)

const makeRegistry = (): HealthService => {
  const probes = new Map<string, Effect.Effect<void, string>>()
  return {
    register: (name, probe) =>
      Effect.acquireRelease(
        Effect.sync(() => void probes.set(name, probe)),
        () => Effect.sync(() => void probes.delete(name))
      ),
    degraded: Effect.suspend(() =>
      Effect.forEach(
        [...probes],
        ([name, probe]) =>
          probe.pipe(
            Effect.timeoutFail({ duration: PROBE_TIMEOUT, onTimeout: () => `no answer within ${Duration.format(PROBE_TIMEOUT)}` }),
            Effect.match({ onFailure: (reason): Array<Degraded> => [{ name, reason }], onSuccess: (): Array<Degraded> => [] })
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.map((lists) => lists.flat()))
    )
  }
}

const unregistered: HealthService = { register: () => Effect.void, degraded: Effect.succeed([]) }

export class Health extends Context.Reference<Health>()("prolo/Health", { defaultValue: () => unregistered }) {
  /** One registry per node: give it to the runtime routes and the subsystems together. */
  static readonly layer: Layer.Layer<Health> = Layer.sync(Health, makeRegistry)
}
