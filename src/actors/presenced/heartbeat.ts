import { Clock, Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import * as Prom from "prom-client"
import { makePresenceClient, type PresenceTarget } from "./client.js"
import { Metrics, promCounter } from "../../runtime/metrics.js"
import { SessionSource } from "./sessions.js"

// presenced: every heartbeat period, one heartbeat per Prologin user with a session here.
// It never gives up: a failed round (sessions unreadable, presence unreachable) is logged and
// retried after a growing delay (never longer than the period); `prolo_presenced_last_ok_seconds`
// tells when presence last answered every heartbeat of a round.

/** Presence answered, and refused (the login is leased on another host, or not allowed here). */
export class HeartbeatRejected extends Schema.TaggedError<HeartbeatRejected>()("HeartbeatRejected", {
  login: Schema.String,
  message: Schema.String
}) {}

/** Presence could not be asked or could not decide; the round is retried. */
export class HeartbeatFailed extends Schema.TaggedError<HeartbeatFailed>()("HeartbeatFailed", {
  login: Schema.String,
  message: Schema.String
}) {}

export interface HeartbeatSenderService {
  readonly send: (login: string, hostname: string) => Effect.Effect<void, HeartbeatRejected | HeartbeatFailed>
}

type HeartbeatClientError = { readonly _tag: string; readonly message: string }

const sendWith =
  (heartbeat: (a: { readonly login: string; readonly hostname: string }) => Effect.Effect<void, HeartbeatClientError>) =>
  (login: string, hostname: string): Effect.Effect<void, HeartbeatRejected | HeartbeatFailed> =>
    heartbeat({ login, hostname }).pipe(
      Effect.catchAll((e) =>
        Effect.fail(
          e._tag === "HeartbeatRefused"
            ? new HeartbeatRejected({ login, message: e.message })
            : new HeartbeatFailed({ login, message: `${e._tag}: ${e.message}` })
        )
      )
    )

export class HeartbeatSender extends Context.Tag("prolo/presenced/HeartbeatSender")<HeartbeatSender, HeartbeatSenderService>() {
  /**
   * The gateway's `presence` rpc group, signed with the presencesync-pub secret: over TCP+msgpack
   * at presence.yml's `tcp_connect` when given (one connection, reopened on the next heartbeat
   * after a drop), else over HTTP at presencesync-pub.yml's `url` (client.ts).
   */
  static readonly to = (target: PresenceTarget): Layer.Layer<HeartbeatSender> =>
    Layer.scoped(
      HeartbeatSender,
      Effect.map(makePresenceClient(target), (client) => ({ send: sendWith(client.Heartbeat) }))
    )
}

export interface HeartbeatOptions {
  readonly period: Duration.DurationInput
  /** This machine's name in MDB (see hostname.ts). */
  readonly hostname: string
  /** First retry delay after a failed round; doubles up to the period. */
  readonly retryInitial?: Duration.DurationInput
}

const describe = (e: { readonly message: string }) => e.message

/**
 * Runs forever: sends the rounds. Needs its scope only for metrics registration. Ends only on a
 * defect; presenced runs it as the supervised loop `/root/presenced/heartbeat`.
 */
export const runHeartbeats = (options: HeartbeatOptions) =>
  Effect.gen(function* () {
    const sessions = yield* SessionSource
    const sender = yield* HeartbeatSender
    const { registry } = yield* Metrics
    const period = Duration.decode(options.period)
    const retryInitial = Duration.decode(options.retryInitial ?? "500 millis")
    const existing = registry.getSingleMetric("prolo_presenced_last_ok_seconds")
    const lastOk =
      existing instanceof Prom.Gauge
        ? existing
        : new Prom.Gauge({
            name: "prolo_presenced_last_ok_seconds",
            help: "Unix time when presence last answered every heartbeat of a round (0: never since start)",
            registers: [registry]
          })
    lastOk.set(0)
    const refused = yield* promCounter({
      name: "prolo_presenced_heartbeat_refused_total",
      help: "Heartbeats presence refused (login leased on another host, or not allowed here)",
      labelNames: []
    })
    const failed = yield* promCounter({
      name: "prolo_presenced_round_failed_total",
      help: "Heartbeat rounds that failed (sessions unreadable or presence unreachable) and were retried",
      labelNames: []
    })

    // One round: true when presence answered every heartbeat (accepted or refused).
    const round = Effect.gen(function* () {
      const users = yield* sessions.users
      const results = yield* Effect.forEach(
        users,
        (login) =>
          sender.send(login, options.hostname).pipe(
            // a gateway that accepts connections but never answers must not stall the loop
            Effect.timeoutFail({
              duration: period,
              onTimeout: () => new HeartbeatFailed({ login, message: `no answer within ${Duration.format(period)}` })
            }),
            Effect.as(true),
            Effect.catchTags({
              HeartbeatRejected: (e) =>
                Effect.as(
                  Effect.zipRight(
                    Effect.sync(() => refused.inc()),
                    Effect.logWarning(`presenced: heartbeat of ${login} on ${options.hostname} refused: ${describe(e)}`)
                  ),
                  true
                ),
              HeartbeatFailed: (e) => Effect.as(Effect.logWarning(`presenced: heartbeat of ${login} failed: ${describe(e)}`), false)
            })
          ),
        { concurrency: 4 }
      )
      return results.every((ok) => ok)
    }).pipe(
      // A defect is a bug, not a failed round: it ends this loop for its supervisor to restart.
      Effect.catchTag("SessionSourceError", (e) => Effect.as(Effect.logWarning(`presenced: ${e.message}`), false))
    )

    // A failed round is retried after retryInitial, doubling, never longer than the period;
    // a successful one (which resets that backoff) is followed by the next one a period later.
    const roundOk = round.pipe(
      Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("round failed" as const))),
      Effect.tapError(() => Effect.sync(() => failed.inc()))
    )
    const backoff = Schedule.exponential(retryInitial).pipe(Schedule.union(Schedule.spaced(period)))
    const untilOk = roundOk.pipe(
      Effect.retry(backoff),
      Effect.orDie, // the backoff never ends: only a defect gets out
      Effect.zipRight(Clock.currentTimeMillis),
      Effect.flatMap((now) => Effect.sync(() => lastOk.set(Math.floor(now / 1000))))
    )
    return yield* Effect.repeat(untilOk, Schedule.spaced(period))
  })
