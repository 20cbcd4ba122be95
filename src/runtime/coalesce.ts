import { Duration, Effect, Queue } from "effect"

// Coalesces bursts of changes into one action per window: the first change of a burst waits
// `window` (Clock-driven: TestClock in tests) for the others, then the action sees every key
// marked meanwhile. The next burst waits a full window again, so the action runs at most once
// per window however fast changes come (one `rndc reload` per zone per 100 ms at most).

export interface Coalescer<K> {
  /** Marks keys as changed; returns at once. */
  readonly mark: (keys: Iterable<K>) => Effect.Effect<void>
  /** The loop: run it as a supervised loop. Keys marked before a restart are kept. */
  readonly run: Effect.Effect<never>
  /** Keys waiting for the next action (for `/__actors`). */
  readonly pending: Effect.Effect<number>
  /** Actions run so far. */
  readonly handled: Effect.Effect<number>
}

export const makeCoalescer = <K>(
  window: Duration.DurationInput,
  action: (keys: ReadonlySet<K>) => Effect.Effect<void>
): Effect.Effect<Coalescer<K>> =>
  Effect.gen(function* () {
    const wake = yield* Queue.sliding<void>(1)
    let dirty = new Set<K>()
    let handled = 0
    const mark = (keys: Iterable<K>) =>
      Effect.suspend(() => {
        const before = dirty.size
        for (const k of keys) dirty.add(k)
        return dirty.size > before ? Queue.offer(wake, undefined).pipe(Effect.asVoid) : Effect.void
      })
    const run = Effect.forever(
      Effect.gen(function* () {
        yield* Queue.take(wake)
        yield* Effect.sleep(window)
        const keys = dirty
        dirty = new Set()
        if (keys.size === 0) return
        // Put back what this action did not finish if it dies, for the restarted loop.
        yield* action(keys).pipe(
          Effect.onExit((exit) =>
            exit._tag === "Success" ? Effect.void : Effect.flatMap(Effect.sync(() => keys), (ks) => mark(ks))
          )
        )
        handled++
      })
    )
    return { mark, run, pending: Effect.sync(() => dirty.size), handled: Effect.sync(() => handled) }
  })
