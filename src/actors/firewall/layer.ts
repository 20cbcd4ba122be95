import { Duration, Effect, Layer, Schedule } from "effect"
import { MDB_TOPIC } from "../../protocols/mdb.js"
import { PRESENCE_TOPIC } from "../../protocols/presence.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { SyncClient } from "../sync/client.js"
import { inProcessSyncClientOf } from "../sync/in-process-client.js"
import { SyncHubLive } from "../sync/layer.js"
import { effectiveGroups, type FirewallProfile, loadFirewallProfile } from "./config.js"
import { makeFirewall } from "./firewall.js"
import { ensureSets, type IpsetConfig, runRules, swapAllowed } from "./ipset.js"

/** How often firewall.yml is read again: contest mode flips without a restart. */
export const POLICY_RELOAD = Duration.seconds(10)

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>) => a.size === b.size && [...a].every((x) => b.has(x))

/**
 * The firewall and its followers, given a `SyncClient` with the mdb, udb and presence
 * subscriber secrets; `reload` reads the profile again (contest mode). In `/__actors`:
 * `follow-mdb`, `follow-udb`, `follow-presence`, `swap` (the debounced rebuild) and `policy`.
 */
export const firewallSubsystem = <E, R>(
  profile: FirewallProfile,
  reload: Effect.Effect<FirewallProfile, E, R>,
  reloadEvery: Duration.DurationInput = POLICY_RELOAD
) =>
  Effect.gen(function* () {
    const ipset: IpsetConfig | undefined =
      profile.ipset === undefined ? undefined : { ipset: profile.ipset, set: profile.set, tmpSet: profile.tmp_set, setType: profile.set_type }
    if (ipset !== undefined) {
      yield* ensureSets(ipset)
      if (profile.rules !== undefined) yield* runRules(profile.rules)
    }
    let groups = effectiveGroups(profile)
    const firewall = yield* makeFirewall({
      apply: (ips) =>
        ipset === undefined
          ? Effect.as(Effect.logDebug(`firewall: ${ips.length} allowed host(s) (no ipset configured: nothing applied)`), "computed" as const)
          : Effect.as(swapAllowed(ipset, ips), "swapped" as const),
      groups,
      window: Duration.millis(profile.debounce_ms),
      retry: Duration.millis(profile.retry_ms)
    })
    const client = yield* SyncClient
    const followers = [
      [MDB_TOPIC, firewall.setMachines],
      ["udb", firewall.setUsers],
      [PRESENCE_TOPIC, firewall.setPresence]
    ] as const
    for (const [topic, set] of followers) {
      const follower = yield* client.follower(topic, (state) => set(state))
      yield* supervisedLoop(`follow-${topic}`, follower.run)
    }
    yield* supervisedLoop("swap", firewall.run, {
      probe: Effect.map(firewall.pending, (mailboxDepth) => ({ mailboxDepth }))
    })
    yield* supervisedLoop(
      "policy",
      Effect.repeat(
        reload.pipe(
          Effect.flatMap((next) => {
            const now = effectiveGroups(next)
            if (sameSet(now, groups)) return Effect.void
            groups = now
            return Effect.zipRight(
              Effect.logInfo(`firewall: allowed groups now ${[...now].join(", ") || "(none)"}${next.contest_enabled ? " (contest mode)" : ""}`),
              firewall.setGroups(now)
            )
          }),
          Effect.catchAll((e) => Effect.logWarning("firewall: firewall.yml not reloaded (the current policy stays)", e))
        ),
        Schedule.spaced(reloadEvery)
      )
    )
    yield* Effect.logInfo(
      `firewall: allowed groups ${[...groups].join(", ")}${ipset === undefined ? " (no ipset configured: computed only)" : `, set ${profile.set}`}`
    )
    return firewall
  })

/** `prolo-node` subsystem (role gw): the internet access set on the gateway. */
export const FirewallLayer = Layer.scopedDiscard(
  Effect.flatMap(loadFirewallProfile, (profile) => firewallSubsystem(profile, loadFirewallProfile))
).pipe(
  Layer.provide(supervisorGroup("firewall")),
  Layer.provide(inProcessSyncClientOf(["mdb", "udb", "presence"])),
  Layer.provide(SyncHubLive)
)
