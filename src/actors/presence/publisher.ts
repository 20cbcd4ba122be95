import { Context, Effect, Layer } from "effect"
import { PRESENCE_TOPIC } from "../../protocols/presence.js"
import type { SyncRecord, Update } from "../../protocols/sync.js"
import { applyUpdates, type State } from "../sync/apply-updates.js"
import { SyncHub } from "../sync/hub.js"

// The `presence` sync topic, in the original's record shape: `{"login", "hostname"}`, a delete
// carrying `hostname: null`. Presence publishes after the change is stored and committed, from
// inside its actor, so the topic's revisions follow the table's order of changes.

export interface Association {
  readonly login: string
  readonly hostname: string
}

export const updateOf = (a: Association): Update => ({ type: "update", data: { login: a.login, hostname: a.hostname } })
export const deleteOf = (login: string): Update => ({ type: "delete", data: { login, hostname: null } })

export interface PresencePublisherService {
  /** Publishes one batch; a failure is logged (the change itself is already stored). */
  readonly publish: (updates: ReadonlyArray<Update>) => Effect.Effect<void>
  /** Makes the topic show exactly `associations` (after a restart: what the store loaded). */
  readonly reset: (associations: ReadonlyArray<Association>) => Effect.Effect<void>
}

/** The updates that turn `current` records into exactly `wanted`. */
export const diffUpdates = (
  current: ReadonlyArray<SyncRecord>,
  wanted: ReadonlyArray<Association>
): ReadonlyArray<Update> => {
  const have = new Map<string, unknown>()
  for (const r of current) if (typeof r["login"] === "string") have.set(r["login"], r["hostname"])
  // Deletes first, and a login that moved is deleted before it reappears: no prefix of the
  // batch shows a user on two hosts or a host with two users.
  const wantedBy = new Map(wanted.map((a) => [a.login, a.hostname]))
  const deletes: Array<Update> = []
  const updates: Array<Update> = []
  for (const [login, hostname] of have) {
    const next = wantedBy.get(login)
    if (next !== hostname) deletes.push(deleteOf(login))
  }
  for (const a of wanted) if (have.get(a.login) !== a.hostname) updates.push(updateOf(a))
  return [...deletes, ...updates]
}

const logged = <E>(what: string) => (effect: Effect.Effect<unknown, E>) =>
  effect.pipe(
    Effect.asVoid,
    Effect.catchAll((e) => Effect.logError(`presence: could not publish ${what} on the presence topic`, e))
  )

export class PresencePublisher extends Context.Tag("prolo/presence/PresencePublisher")<
  PresencePublisher,
  PresencePublisherService
>() {
  /** The node's own sync hub (presence runs on the gateway beside it). */
  static readonly hub: Layer.Layer<PresencePublisher, never, SyncHub> = Layer.effect(
    PresencePublisher,
    Effect.map(SyncHub, (hub) => ({
      publish: (updates) => (updates.length === 0 ? Effect.void : logged("a change")(hub.publish(PRESENCE_TOPIC, updates))),
      reset: (associations) =>
        logged("the reloaded table")(
          Effect.gen(function* () {
            const topic = yield* hub.topic(PRESENCE_TOPIC)
            const { records } = yield* topic.source.snapshot
            const updates = diffUpdates(records, associations)
            if (updates.length > 0) yield* hub.publish(PRESENCE_TOPIC, updates)
          })
        )
    }))
  )

  /**
   * Records every batch and the topic state after it (tests, benchmarks). `state` survives
   * presence restarts made with the same handle, like a hub that outlives presence.
   */
  static readonly recording = () => {
    const handle = {
      batches: [] as Array<ReadonlyArray<Update>>,
      state: new Map() as State,
      layer: Layer.succeed(PresencePublisher, {
        publish: (updates) =>
          Effect.sync(() => {
            if (updates.length === 0) return
            handle.batches.push(updates)
            applyUpdates("login", handle.state, updates)
          }),
        reset: (associations) =>
          Effect.sync(() => {
            const updates = diffUpdates([...handle.state.values()], associations)
            if (updates.length === 0) return
            handle.batches.push(updates)
            applyUpdates("login", handle.state, updates)
          })
      })
    }
    return handle
  }
}
