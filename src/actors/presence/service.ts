import { Context, Effect, Either, Layer } from "effect"
import {
  type HeartbeatRefused,
  type InvalidPresenceRequest,
  type LoginRefused,
  type LogoutRefused,
  type PresenceList,
  PresenceUnavailable
} from "../../protocols/presence.js"
import type { AskError } from "../../runtime/actor.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { Metrics } from "../../runtime/metrics.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { Expire, Heartbeat, List, Logout, makePresenceActor, RequestLogin } from "./actor.js"
import type { Directory } from "./directory.js"
import type { LeaseStore } from "./lease-store.js"
import { presenceMetrics } from "./metrics.js"
import type { PresencePublisher } from "./publisher.js"
import { validateAssociation } from "./rules.js"

// What the rpc handlers, the HTTP compatibility endpoints and tests call. Input is checked
// here, before the actor sees it: bad input gets a precise error and changes nothing.

export interface PresenceService {
  readonly requestLogin: (login: string, hostname: string) => Effect.Effect<void, LoginRefused | InvalidPresenceRequest | PresenceUnavailable>
  readonly heartbeat: (login: string, hostname: string) => Effect.Effect<void, HeartbeatRefused | InvalidPresenceRequest | PresenceUnavailable>
  readonly logout: (login: string, hostname: string) => Effect.Effect<void, LogoutRefused | InvalidPresenceRequest | PresenceUnavailable>
  readonly list: Effect.Effect<PresenceList, PresenceUnavailable>
  /** The original's `/remove_expired`: expiry is automatic, this only forces it now. */
  readonly removeExpired: Effect.Effect<void, PresenceUnavailable>
}

export interface PresenceConfig {
  /** Lease period; heartbeats are sent every fifth of it. Default 10 s. */
  readonly leaseMillis: number
  /** Bound on one store write (login, logout, expiry); default a fifth of the lease. */
  readonly writeTimeoutMillis?: number
}

export const DEFAULT_LEASE_SECONDS = 10

const unavailable = (e: AskError) =>
  new PresenceUnavailable({
    message:
      e._tag === "MailboxFull"
        ? `presence is overloaded (${e.message}); retry`
        : e._tag === "ActorDefect"
          ? `presence failed on this request and restarted; retry (${e.messageTag})`
          : `presence is stopping (${e.message}); retry`
  })

export class Presence extends Context.Tag("prolo/presence/Presence")<Presence, PresenceService>() {
  static readonly layer = (
    config: PresenceConfig
  ): Layer.Layer<Presence, PresenceUnavailable, Directory | LeaseStore | PresencePublisher | Metrics | ActorTree | ActorSupervisor> =>
    Layer.scoped(
      Presence,
      Effect.gen(function* () {
        const metrics = yield* presenceMetrics(config.leaseMillis / 1000)
        const { ref, touch } = yield* makePresenceActor({
          leaseMillis: config.leaseMillis,
          metrics,
          ...(config.writeTimeoutMillis === undefined ? {} : { writeTimeoutMillis: config.writeTimeoutMillis })
        })
        const checked = <E>(
          login: string,
          hostname: string,
          run: (a: { readonly login: string; readonly hostname: string }) => Effect.Effect<void, E>
        ) => Effect.flatMap(validateAssociation(login, hostname), run)
        const answer = <A, E>(effect: Effect.Effect<Either.Either<A, E>, AskError>): Effect.Effect<A, E | PresenceUnavailable> =>
          Effect.flatMap(Effect.mapError(effect, unavailable), (either) => either)
        return {
          requestLogin: (login, hostname) => checked(login, hostname, (a) => answer(ref.ask(new RequestLogin(a)))),
          // A heartbeat of a held lease never waits behind the actor (a store write may be slow).
          heartbeat: (login, hostname) =>
            checked(login, hostname, (a) =>
              Effect.flatMap(touch(a.login, a.hostname), (done) => (done ? Effect.void : answer(ref.ask(new Heartbeat(a)))))
            ),
          logout: (login, hostname) => checked(login, hostname, (a) => answer(ref.ask(new Logout(a)))),
          list: answer(ref.ask(new List())),
          removeExpired: Effect.mapError(ref.ask(new Expire()), unavailable)
        }
      })
    )
}
