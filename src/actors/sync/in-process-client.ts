import type { FileSystem } from "@effect/platform/FileSystem"
import { Effect, Layer, type Redacted } from "effect"
import { type ConfigDir, type ConfigError, loadProfile } from "../../runtime/config.js"
import { PresenceSubProfile, SharedSecretProfile } from "../../runtime/profiles.js"
import { makeSyncClient, SyncClient } from "./client.js"
import { inProcessConnector } from "./connection.js"
import { SyncHub } from "./hub.js"

// A follower of the node's own hub for the gateway's subsystems (presence, dns, sso, firewall):
// each topic it follows is signed with that topic's subscriber secret, read from the profile
// the original used for it.

const subscriberSecret = {
  mdb: loadProfile("mdbsync-sub", SharedSecretProfile),
  udb: loadProfile("udbsync-sub", SharedSecretProfile),
  presence: loadProfile("presencesync-sub", PresenceSubProfile)
} as const
export type FollowedTopic = keyof typeof subscriberSecret

/** A `SyncClient` on the node's hub holding the subscriber secrets of `topics` only. */
export const inProcessSyncClientOf = (
  topics: ReadonlyArray<FollowedTopic>
): Layer.Layer<SyncClient, ConfigError, SyncHub | ConfigDir | FileSystem> =>
  Layer.effect(
    SyncClient,
    Effect.gen(function* () {
      const hub = yield* SyncHub
      const secrets = new Map<string, Redacted.Redacted<string>>()
      for (const topic of topics) secrets.set(topic, (yield* subscriberSecret[topic]).shared_secret)
      return makeSyncClient({
        connect: Effect.provideService(inProcessConnector, SyncHub, hub),
        credentials: (topic) => {
          const secret = secrets.get(topic)
          return secret === undefined ? {} : { subscribe: secret }
        }
      })
    })
  )
