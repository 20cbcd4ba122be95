import { Duration, Effect, Metric } from "effect"
import type { SyncRecord } from "../../protocols/sync.js"
import { makeCoalescer } from "../../runtime/coalesce.js"
import { allowedHosts } from "./allowed.js"
import type { SwapFailed } from "./ipset.js"
import { allowedHostsGauge, swapFailures, swaps } from "./metrics.js"

// The firewall's state and its one writer: the three followed topics and the allowed groups
// feed it, and a debounced loop (Clock-driven) rebuilds the set at most once per window from
// the latest state whatever the burst, so 1 000 logins and logouts cost a few swaps, and the
// last swap always reflects the last state. Nothing is applied before all three topics
// delivered their first state (the original waited for non-empty machines and users): an
// early empty set would cut everyone off.

type State = ReadonlyMap<string, SyncRecord>

export interface Firewall {
  readonly setMachines: (state: State) => Effect.Effect<void>
  readonly setUsers: (state: State) => Effect.Effect<void>
  readonly setPresence: (state: State) => Effect.Effect<void>
  readonly setGroups: (groups: ReadonlySet<string>) => Effect.Effect<void>
  /** The debounce loop: run it as a supervised loop. */
  readonly run: Effect.Effect<never>
  /** The set the current state calls for (undefined until all topics were heard). */
  readonly expected: () => ReadonlyArray<string> | undefined
  /** The set last swapped in. */
  readonly applied: () => ReadonlyArray<string> | undefined
  readonly pending: Effect.Effect<number>
}

export const makeFirewall = (options: {
  /** "swapped" when the kernel's set was replaced, "computed" when nothing is applied (no ipset configured). */
  readonly apply: (ips: ReadonlyArray<string>) => Effect.Effect<"swapped" | "computed", SwapFailed>
  readonly groups: ReadonlySet<string>
  readonly window: Duration.DurationInput
  readonly retry: Duration.DurationInput
}): Effect.Effect<Firewall> =>
  Effect.gen(function* () {
    let machines: State | undefined
    let users: State | undefined
    let presence: State | undefined
    let groups = options.groups
    let applied: ReadonlyArray<string> | undefined
    let reported = ""

    const compute = () =>
      machines === undefined || users === undefined || presence === undefined
        ? undefined
        : allowedHosts({ machines, users, presence, groups })

    const update: Effect.Effect<void> = Effect.gen(function* () {
      const allowed = compute()
      if (allowed === undefined) return
      const report = [...allowed.unknownLogins.map((l) => `login ${l}`), ...allowed.unknownHosts.map((h) => `host ${h}`)].join(", ")
      if (report !== reported) {
        reported = report
        if (report !== "") yield* Effect.logWarning(`firewall: left out, unknown to UDB/MDB: ${report}`)
      }
      const exit = yield* Effect.exit(options.apply(allowed.ips))
      if (exit._tag === "Success") {
        applied = allowed.ips
        if (exit.value === "swapped") yield* Metric.increment(swaps)
        yield* Metric.set(allowedHostsGauge, allowed.ips.length)
        return
      }
      yield* Metric.increment(swapFailures)
      yield* Effect.logError(`firewall: the allowed set was not replaced (the live one stays); retrying in ${Duration.format(options.retry)}`, exit.cause)
      yield* Effect.sleep(options.retry)
      yield* coalescer.mark(["retry"])
    })
    const coalescer = yield* makeCoalescer<string>(options.window, () => update)

    const set = (what: string, assign: () => void) => Effect.zipRight(Effect.sync(assign), coalescer.mark([what]))
    return {
      setMachines: (state) => set("mdb", () => (machines = state)),
      setUsers: (state) => set("udb", () => (users = state)),
      setPresence: (state) => set("presence", () => (presence = state)),
      setGroups: (next) => set("groups", () => (groups = next)),
      run: coalescer.run,
      expected: () => compute()?.ips,
      applied: () => applied,
      pending: coalescer.pending
    }
  })
