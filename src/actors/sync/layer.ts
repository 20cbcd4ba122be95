import type { FileSystem } from "@effect/platform/FileSystem"
import type { HttpRouter } from "@effect/platform/HttpLayerRouter"
import { Effect, Layer, Schedule } from "effect"
import { type ConfigDir, loadProfile } from "../../runtime/config.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { Metrics } from "../../runtime/metrics.js"
import { PresenceSubProfile, SharedSecretProfile } from "../../runtime/profiles.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { type ActorSupervisor, supervisorGroup } from "../../runtime/supervisor.js"
import { ChangeLog } from "../../store/change-log.js"
import { DatabaseLive } from "../../store/database.js"
import { changeLogSourceFor } from "./changelog-source.js"
import { type HubTopic, SyncHub, type SyncHubConfig } from "./hub.js"
import { makeMemorySource } from "./memory-source.js"
import { syncRoutes } from "./routes.js"
import { DEFAULT_TOPICS, type TopicDefinition } from "./topics.js"

// The gateway's sync hub as a node subsystem: secrets from `<profile>-pub.yml`,
// `<profile>-sub.yml` (and the udb topic's hash audience: `udbsync-shadow.yml`), durable topics on the node's database (pruned to `DURABLE_RETENTION`
// revisions), the presence topic in memory.

/** Revisions a durable topic keeps for resuming subscribers (older resumes get a snapshot). */
export const DURABLE_RETENTION = 10_000
/** Batches the in-memory topic keeps. */
export const MEMORY_RETENTION = 2_000

const secretOf = (profile: string) => Effect.map(loadProfile(profile, SharedSecretProfile), (p) => p.shared_secret)

const loadSecrets = (definition: TopicDefinition) =>
  Effect.all({
    publisher: secretOf(`${definition.profile}-pub`),
    subscriber: Effect.map(
      definition.profile === "presencesync"
        ? loadProfile(`${definition.profile}-sub`, PresenceSubProfile)
        : loadProfile(`${definition.profile}-sub`, SharedSecretProfile),
      (p) => p.shared_secret
    ),
    ...(definition.hashProfile === undefined ? {} : { hashes: secretOf(definition.hashProfile) })
  })

const pruneForever = (topic: string) =>
  Effect.flatMap(ChangeLog, (log) =>
    log.prune(topic, DURABLE_RETENTION).pipe(
      Effect.catchAll((e) => Effect.logWarning(`sync ${topic}: pruning the change log failed: ${e.message}`)),
      Effect.repeat(Schedule.spaced("1 minute"))
    )
  )

/** The hub over `topics`, reading secrets from the config directory. */
export const syncHubFromProfiles = (
  topics: ReadonlyArray<TopicDefinition> = DEFAULT_TOPICS,
  options?: SyncHubConfig["options"]
) =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const log = yield* ChangeLog
      const hubTopics: Array<HubTopic> = []
      for (const definition of topics) {
        const secrets = yield* loadSecrets(definition)
        const source = definition.durable
          ? changeLogSourceFor(log, definition)
          : yield* makeMemorySource({ topic: definition.name, keyField: definition.keyField, retention: MEMORY_RETENTION })
        if (definition.durable) yield* supervisedLoop(`${definition.name}-prune`, pruneForever(definition.name))
        hubTopics.push({ definition, secrets, source })
      }
      return SyncHub.layer(options === undefined ? { topics: hubTopics } : { topics: hubTopics, options })
    })
  )

/**
 * The node's one hub over the node's database, under the `sync` supervisor: `/root/sync/<topic>`
 * for each topic's fan-out, `/root/sync/<topic>-prune` for each durable topic's pruner. Shared by
 * reference: in-process publishers (presence) and the routes below get the same instance when a
 * node builds both, so a subsystem that uses it provides it outside its own supervisor group.
 */
export const SyncHubLive: Layer.Layer<SyncHub, unknown, ConfigDir | FileSystem | Metrics | ActorTree | ActorSupervisor> =
  syncHubFromProfiles().pipe(Layer.provide(supervisorGroup("sync")), Layer.provide(DatabaseLive))

/** `prolo-node` subsystem: the hub and its routes (`/rpc/sync`, `/sync/<topic>/poll|update`). */
export const SyncLayer: Layer.Layer<never, unknown, ConfigDir | FileSystem | Metrics | HttpRouter | ActorTree | ActorSupervisor> = syncRoutes.pipe(
  Layer.provide(SyncHubLive)
)
