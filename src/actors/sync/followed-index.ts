import { Deferred, Duration, Effect } from "effect"
import type { SyncRecord } from "../../protocols/sync.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import type { SyncClientService } from "./client.js"

// An in-memory index of a followed topic (presence's and the HFS's view of mdb and udb): the
// follower runs as the supervised loop `follow-<topic>` of the current supervisor and rebuilds
// the index from the whole followed state on each applied batch, so a renamed or deleted
// record leaves nothing stale behind (~150 machines, a few hundred users: cheap). Until the
// first state arrived, a reader waits a bounded time and is then told to retry, never given
// a wrong "unknown".

export interface FollowedIndex {
  /** Waits for the topic's first state, at most `wait`; then fails with `onTimeout(message)`. */
  readonly ready: <E>(wait: Duration.DurationInput, onTimeout: (message: string) => E) => Effect.Effect<void, E>
}

export const followIndex = (
  client: SyncClientService,
  topic: string,
  rebuild: (state: ReadonlyMap<string, SyncRecord>) => void
) =>
  Effect.gen(function* () {
    const received = yield* Deferred.make<void>()
    const follower = yield* client.follower(topic, (state) =>
      Effect.zipRight(
        Effect.sync(() => rebuild(state)),
        Deferred.succeed(received, undefined)
      )
    )
    yield* supervisedLoop(`follow-${topic}`, follower.run)
    const index: FollowedIndex = {
      ready: (wait, onTimeout) =>
        Deferred.await(received).pipe(
          Effect.timeoutFail({
            duration: wait,
            onTimeout: () =>
              onTimeout(`the ${topic} topic has not been received yet (waited ${Duration.format(Duration.decode(wait))}); retry`)
          })
        )
    }
    return index
  })
