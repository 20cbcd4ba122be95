import { Clock, Duration, Effect } from "effect"

// A manual clock for the property test: like TestClock, time moves only when told, but
// advancing does not wait on real timers for every fiber to suspend (TestClock does, which
// costs about a millisecond per sleeper per step): it wakes due sleepers one at a time, in
// order, and lets the runtime settle between them with a few scheduler yields.

interface Sleeper {
  readonly at: number
  readonly seq: number
  readonly wake: () => void
}

export interface VirtualClock {
  readonly clock: Clock.Clock
  readonly advance: (ms: number, settle: Effect.Effect<void>) => Effect.Effect<void>
}

export const makeVirtualClock = (): VirtualClock => {
  let now = 0
  let seq = 0
  let sleepers: Array<Sleeper> = []
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => now,
    currentTimeMillis: Effect.sync(() => now),
    unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    sleep: (duration) =>
      Effect.async<void>((resume) => {
        const sleeper: Sleeper = { at: now + Duration.toMillis(duration), seq: seq++, wake: () => resume(Effect.void) }
        sleepers.push(sleeper)
        return Effect.sync(() => {
          sleepers = sleepers.filter((s) => s !== sleeper)
        })
      })
  }
  const advance = (ms: number, settle: Effect.Effect<void>) =>
    Effect.gen(function* () {
      const end = now + ms
      yield* settle
      while (true) {
        let next: Sleeper | undefined
        for (const s of sleepers) {
          if (s.at <= end && (next === undefined || s.at < next.at || (s.at === next.at && s.seq < next.seq))) next = s
        }
        if (next === undefined) break
        const due = next
        sleepers = sleepers.filter((s) => s !== due)
        now = Math.max(now, due.at)
        due.wake()
        yield* settle
      }
      now = end
      yield* settle
    })
  return { clock, advance }
}
