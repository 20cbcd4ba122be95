import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import { MDB_TOPIC } from "../../protocols/mdb.js"
import { PRESENCE_TOPIC } from "../../protocols/presence.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { SyncClient } from "../sync/client.js"
import { inProcessSyncClientOf } from "../sync/in-process-client.js"
import { SyncHubLive } from "../sync/layer.js"
import { loadSsoProfile, type SsoProfile } from "./config.js"
import { countRequest, ssoStaleness } from "./metrics.js"
import { listenWhois, whoisHandler } from "./server.js"
import { makeWhois } from "./whois.js"

/**
 * The whois and its followers, given a `SyncClient` holding the mdb and presence subscriber
 * secrets. In `/__actors`: `follow-mdb`, `follow-presence` and `staleness` (the gauge).
 */
export const ssoWhois = (profile: SsoProfile) =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const client = yield* SyncClient
    const mdb = yield* client.follower(MDB_TOPIC, (state) => Effect.sync(() => whois.setMachines(state)))
    const presence = yield* client.follower(PRESENCE_TOPIC, (state) => Effect.sync(() => whois.setPresence(state)))
    const whois = makeWhois({
      overrides: profile.overrides,
      staleAfterMs: profile.stale_after_seconds * 1000,
      sources: [
        { topic: MDB_TOPIC, lastFrameAt: mdb.lastFrameAt },
        { topic: PRESENCE_TOPIC, lastFrameAt: presence.lastFrameAt }
      ],
      startedAt: clock.unsafeCurrentTimeMillis()
    })
    yield* supervisedLoop("follow-mdb", mdb.run)
    yield* supervisedLoop("follow-presence", presence.run)
    yield* supervisedLoop(
      "staleness",
      Effect.repeat(
        Effect.suspend(() => Metric.set(ssoStaleness, whois.staleness(clock.unsafeCurrentTimeMillis()))),
        Schedule.spaced(Duration.seconds(1))
      )
    )
    const address = yield* listenWhois(
      profile.listen,
      whoisHandler({ whois, now: () => clock.unsafeCurrentTimeMillis(), allow: profile.allow, count: countRequest })
    )
    yield* Effect.logInfo(`sso: whois on ${address.host}:${address.port} (allowed clients: ${profile.allow.join(", ")})`)
    return { whois, address }
  })

/** `prolo-node` subsystem (role gw): the whois nginx's `auth_request` asks, on its own listener. */
export const SsoLayer = Layer.scopedDiscard(Effect.flatMap(loadSsoProfile, ssoWhois)).pipe(
  Layer.provide(supervisorGroup("sso")),
  Layer.provide(inProcessSyncClientOf(["mdb", "presence"])),
  Layer.provide(SyncHubLive)
)
