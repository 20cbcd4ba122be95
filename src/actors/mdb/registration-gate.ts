import { Clock, Context, Effect, Layer, Schema } from "effect"
import { RegistrationDisabled, RegistrationRateLimited } from "../../protocols/mdb.js"
import { loadProfile } from "../../runtime/config.js"

// Self-registration (`register`) is open by design: a booting machine has no secret. So it is
// off unless the node's configuration turns it on (the operator does so while installing
// machines), and rate-limited per source address and overall, so that an open `register`
// cannot fill the address pools or the machine table in a burst.

/** `mdb-registration.yml`: the MDB server's self-registration policy. */
export const RegistrationProfile = Schema.Struct({
  /** Off by default; `--layer all`'s example turns it on (the demo registers machines by hand). */
  enabled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  per_source_per_minute: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 6 }),
  per_minute: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100_000)), { default: () => 120 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type RegistrationProfile = typeof RegistrationProfile.Type

export interface RegistrationPolicy {
  readonly enabled: boolean
  readonly perSourcePerMinute: number
  readonly perMinute: number
}

/** Sources remembered at once; past it, buckets that refilled are dropped, then new sources wait. */
export const MAX_SOURCES = 10_000

interface Bucket {
  tokens: number
  at: number
}

/**
 * Token buckets on `Clock`: `perMinute` tokens, refilled continuously (one every 60/perMinute
 * seconds). `take` answers undefined when a token was taken, else the seconds until one is back.
 */
export const makeBuckets = (perMinute: number, maxKeys: number = MAX_SOURCES) => {
  const buckets = new Map<string, Bucket>()
  const perMs = perMinute / 60_000
  const refill = (b: Bucket, now: number) => {
    b.tokens = Math.min(perMinute, b.tokens + (now - b.at) * perMs)
    b.at = now
  }
  return {
    size: () => buckets.size,
    /** Whether `key` could take a token at `now`, and how long until it could. */
    peek: (key: string, now: number): number | undefined => {
      const b = buckets.get(key)
      if (b === undefined) return undefined
      refill(b, now)
      return b.tokens >= 1 ? undefined : Math.ceil((1 - b.tokens) / perMs / 1000)
    },
    take: (key: string, now: number): number | undefined => {
      let b = buckets.get(key)
      if (b === undefined) {
        if (buckets.size >= maxKeys) {
          for (const [k, old] of buckets) {
            refill(old, now)
            if (old.tokens >= perMinute) buckets.delete(k)
          }
          if (buckets.size >= maxKeys) return 60
        }
        b = { tokens: perMinute, at: now }
        buckets.set(key, b)
      }
      refill(b, now)
      if (b.tokens < 1) return Math.ceil((1 - b.tokens) / perMs / 1000)
      b.tokens -= 1
      return undefined
    }
  }
}

export interface RegistrationGateService {
  /**
   * Lets one registration through, or says why not: off in the configuration, or over a limit
   * (`source`: the caller's address; absent for the rpc, which knows none: the global limit only).
   */
  readonly admit: (source: string | undefined) => Effect.Effect<void, RegistrationDisabled | RegistrationRateLimited>
}

const GLOBAL = "*"

export class RegistrationGate extends Context.Tag("prolo/mdb/RegistrationGate")<RegistrationGate, RegistrationGateService>() {
  static readonly layer = (policy: RegistrationPolicy): Layer.Layer<RegistrationGate> => Layer.sync(RegistrationGate, () => make(policy))

  /** From `mdb-registration.yml` in the config directory. */
  static readonly fromProfile = Layer.unwrapEffect(
    Effect.map(loadProfile("mdb-registration", RegistrationProfile), (p) =>
      RegistrationGate.layer({ enabled: p.enabled, perSourcePerMinute: p.per_source_per_minute, perMinute: p.per_minute })
    )
  )
}

const make = (policy: RegistrationPolicy): RegistrationGateService => {
  const perSource = makeBuckets(policy.perSourcePerMinute)
  const global = makeBuckets(policy.perMinute, 1)
  return {
    admit: (source) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void, RegistrationDisabled | RegistrationRateLimited> => {
        if (!policy.enabled) {
          return Effect.fail(
            new RegistrationDisabled({ message: "self registration is disabled on this node (mdb-registration.yml: enabled is false)" })
          )
        }
        // The global bucket is only spent when the source may go: a flooding source does not
        // lock everyone else out.
        if (source !== undefined) {
          const wait = perSource.peek(source, now)
          if (wait !== undefined) {
            return Effect.fail(
              new RegistrationRateLimited({
                limit: "source",
                source,
                perMinute: policy.perSourcePerMinute,
                retryAfterSeconds: wait,
                message: `too many self registrations from ${source} (at most ${policy.perSourcePerMinute} a minute): retry in ${wait} s`
              })
            )
          }
        }
        const globalWait = global.take(GLOBAL, now)
        if (globalWait !== undefined) {
          return Effect.fail(
            new RegistrationRateLimited({
              limit: "global",
              perMinute: policy.perMinute,
              retryAfterSeconds: globalWait,
              message: `too many self registrations on this node (at most ${policy.perMinute} a minute): retry in ${globalWait} s`
            })
          )
        }
        if (source !== undefined) perSource.take(source, now)
        return Effect.void
      })
  }
}
