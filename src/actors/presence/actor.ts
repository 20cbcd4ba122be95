import { Clock, Effect, Either, Option, Request, Schedule, Stream, SubscriptionRef } from "effect"
import {
  HeartbeatRefused,
  LoginRefused,
  LogoutRefused,
  type PresenceList,
  PresenceUnavailable
} from "../../protocols/presence.js"
import * as Actor from "../../runtime/actor.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { Directory } from "./directory.js"
import { LeaseStore, type StoredLease } from "./lease-store.js"
import type { PresenceMetrics } from "./metrics.js"
import { deleteOf, PresencePublisher, updateOf } from "./publisher.js"
import {
  admit,
  assign,
  dueLeases,
  type Lease,
  nextExpiry,
  occupancy,
  occupiedRefusal,
  type Refusal,
  release,
  type Table,
  tableOf,
  logoutText
} from "./rules.js"

// The PresenceActor owns the login table; one message at a time, so a decision and the write
// that records it are never interleaved with another decision.
//
// Every change of membership (accepted login, logout, expiry) is written to the LeaseStore,
// then committed to the table, then published. Replies are `Either`s rather than typed
// failures because a refusal may follow changes already stored (leases that expired on the
// way): the actor keeps state only from handlers that succeed, so those must succeed.
//
// A stalled database must not expire anybody (issue 17 item 5). So:
// - a heartbeat for a lease the table holds on that very host is answered beside the actor
//   (`touch`): it only records its receipt time in `seen`, never waits behind a store write,
//   and the actor folds `seen` into the leases before it judges any expiry. Membership still
//   changes only inside the actor, so invariant 3 is decided in one place;
// - every store write is bounded (`writeTimeoutMillis`) and answers PresenceUnavailable;
// - an accepted lease starts when its write is done, not when the decision began.

type Answer<E> = Either.Either<void, E | PresenceUnavailable>

export class RequestLogin extends Request.TaggedClass("RequestLogin")<
  Answer<LoginRefused>,
  never,
  { readonly login: string; readonly hostname: string }
> {}
export class Heartbeat extends Request.TaggedClass("Heartbeat")<
  Answer<HeartbeatRefused>,
  never,
  { readonly login: string; readonly hostname: string }
> {}
export class Logout extends Request.TaggedClass("Logout")<
  Answer<LogoutRefused>,
  never,
  { readonly login: string; readonly hostname: string }
> {}
export class List extends Request.TaggedClass("List")<Either.Either<PresenceList, PresenceUnavailable>, never, {}> {}
/** Sent by the expiry timer when the earliest lease is due. */
export class Expire extends Request.TaggedClass("Expire")<void, never, {}> {}

export type PresenceMessage = RequestLogin | Heartbeat | Logout | List | Expire

export interface PresenceActorOptions {
  readonly leaseMillis: number
  readonly metrics: PresenceMetrics
  /** How soon the timer retries an expiry the store refused. */
  readonly expiryRetryMillis?: number
  /** How long a store write may take before the request answers PresenceUnavailable. Default: a fifth of the lease. */
  readonly writeTimeoutMillis?: number
}

/** The actor, and the heartbeat path that does not queue behind it. */
export interface PresenceActor {
  readonly ref: Actor.ActorRef<PresenceMessage>
  /**
   * Records a heartbeat of `login` from `hostname` when the table holds that lease and no
   * removal of it is under way; false when the actor must decide (no lease, another host).
   */
  readonly touch: (login: string, hostname: string) => Effect.Effect<boolean>
}

/** Every stored lease is live after a (re)start, for one whole lease period from now. */
export const restoredTable = (rows: ReadonlyArray<StoredLease>, now: number, leaseMillis: number, keep?: Table): Table =>
  tableOf(
    rows.map((row): Lease => {
      const known = keep?.byLogin.get(row.login)
      return known !== undefined && known.hostname === row.hostname
        ? known
        : { login: row.login, hostname: row.hostname, since: row.since, expiresAt: now + leaseMillis, refreshedAt: now }
    })
  )

const associations = (table: Table) => [...table.byLogin.values()].map((l) => ({ login: l.login, hostname: l.hostname }))

export const makePresenceActor = (options: PresenceActorOptions) =>
  Effect.gen(function* () {
    const store = yield* LeaseStore
    const directory = yield* Directory
    const publisher = yield* PresencePublisher
    const { metrics, leaseMillis } = options
    const retryMillis = options.expiryRetryMillis ?? 1000
    const writeTimeoutMillis = options.writeTimeoutMillis ?? Math.max(1, Math.floor(leaseMillis / 5))
    // A write that does not answer in time is abandoned (its cancellation goes on in the
    // background: interrupting a query waits for the server, which is what is stalled).
    const bounded = <A>(what: string, write: Effect.Effect<A, PresenceUnavailable>) =>
      write.pipe(
        Effect.disconnect,
        Effect.timeoutFail({
          duration: writeTimeoutMillis,
          onTimeout: () =>
            new PresenceUnavailable({
              message: `presence database: no answer within ${writeTimeoutMillis} ms to ${what}; retry`
            })
        })
      )
    // Last heartbeat receipt per login (and the host it came from), written by `touch` only.
    const seen = new Map<string, { readonly hostname: string; readonly at: number }>()
    // Logins whose removal is being written: their heartbeats go through the actor, which
    // answers them once the removal is settled.
    const removing = new Set<string>()
    // The table as last committed, for `touch` (read-only there).
    let current: Table | undefined
    // When the expiry timer must next wake up; the timer fiber follows it.
    const wakeAt = yield* SubscriptionRef.make(Option.none<number>())

    // The earliest expiry as last computed: nothing can be due before it, so most requests
    // skip the scan. Re-arming the timer only when it moves keeps heartbeats cheap.
    let earliest: number | undefined
    const committed = (table: Table, wake?: number) =>
      Effect.suspend(() => {
        metrics.loggedUsers.set(table.byLogin.size)
        current = table
        const next = wake ?? nextExpiry(table)
        const moved = next !== earliest
        earliest = next
        return moved ? Effect.as(SubscriptionRef.set(wakeAt, Option.fromNullable(next)), table) : Effect.succeed(table)
      })

    const load = (keep?: Table) =>
      Effect.gen(function* () {
        const rows = yield* store.load
        const now = yield* Clock.currentTimeMillis
        const table = restoredTable(rows, now, leaseMillis, keep)
        yield* publisher.reset(associations(table))
        return yield* committed(table)
      })

    // Heartbeats recorded by `touch` since the lease was last refreshed extend it from their
    // receipt time: expiry is judged on when the machine spoke, not on when the actor looked.
    const foldSeen = (table: Table) => {
      for (const lease of table.byLogin.values()) {
        const s = seen.get(lease.login)
        if (s !== undefined && s.hostname === lease.hostname && s.at > lease.refreshedAt) {
          assign(table, { ...lease, expiresAt: s.at + leaseMillis, refreshedAt: s.at })
        }
      }
    }

    const released = (table: Table, logins: ReadonlyArray<string>) => {
      for (const login of logins) seen.delete(login)
      return release(table, logins)
    }

    // Drops the leases due at `now`. If the store refuses, they stay (a user held a little
    // longer is safe; one freed in memory but not in the database could be logged in twice).
    const expire = (table: Table, now: number) =>
      Effect.gen(function* () {
        if (earliest === undefined || now < earliest) return table
        // One synchronous step: no heartbeat can slip between the judgement and the marking.
        const due = yield* Effect.sync(() => {
          foldSeen(table)
          const found = dueLeases(table, now)
          for (const lease of found) removing.add(lease.login)
          return found
        })
        if (due.length === 0) return yield* committed(table)
        const stored = yield* Effect.either(bounded(`remove ${due.map((l) => l.login).join(", ")}`, store.remove(due.map((l) => l.login)))).pipe(
          Effect.ensuring(Effect.sync(() => due.forEach((l) => removing.delete(l.login))))
        )
        if (Either.isLeft(stored)) {
          yield* Effect.logWarning(`presence: cannot record the expiry of ${due.map((l) => l.login).join(", ")}`, stored.left)
          return yield* committed(table, now + retryMillis)
        }
        for (const lease of due) metrics.leaseAge.observe((now - lease.refreshedAt) / 1000)
        yield* publisher.publish(due.map((l) => deleteOf(l.login)))
        return yield* committed(released(table, due.map((l) => l.login)))
      })

    const refresh = (table: Table, lease: Lease, now: number) =>
      committed(assign(table, { ...lease, expiresAt: now + leaseMillis, refreshedAt: now }))

    // A login on a free host: the directory decides, then the store records, then we publish.
    const establish = (table: Table, login: string, hostname: string, now: number) =>
      Effect.gen(function* () {
        const machine = yield* directory.machine(hostname)
        const user = yield* directory.user(login)
        const admitted = admit(login, hostname, Option.getOrUndefined(machine), Option.getOrUndefined(user))
        if (Either.isLeft(admitted)) return Either.left(admitted.left)
        yield* bounded(`record ${login} on ${hostname}`, store.put({ login, hostname, since: now }))
        // The lease runs from when it is recorded: a slow write must not hand out a lease
        // that is already over.
        const start = Math.max(now, yield* Clock.currentTimeMillis)
        const next = assign(table, { login, hostname, since: now, expiresAt: start + leaseMillis, refreshedAt: start })
        yield* publisher.publish([updateOf({ login, hostname })])
        return Either.right(yield* committed(next))
      }).pipe(Effect.either)

    type Decision = Either.Either<Table, Refusal | PresenceUnavailable>

    // The login rules shared by RequestLogin and a heartbeat without a lease.
    const decide = (table: Table, login: string, hostname: string, now: number): Effect.Effect<Decision> => {
      const occ = occupancy(table, login, hostname)
      switch (occ) {
        case "here":
          return Effect.map(refresh(table, table.byLogin.get(login)!, now), Either.right)
        case "elsewhere":
        case "busy":
          return Effect.succeed(Either.left(occupiedRefusal(occ, login, hostname)))
        case "free":
          return Effect.map(establish(table, login, hostname, now), (r) => Either.flatMap(r, (inner) => inner))
      }
    }

    const isRefusal = (e: Refusal | PresenceUnavailable): e is Refusal => !(e instanceof PresenceUnavailable)

    // RequestLogin and Heartbeat share the rules; only how a refusal is counted, logged and
    // typed differs. The state after a refusal is `table` (expiries already applied).
    const decideOrRefuse = <R>(
      table: Table,
      login: string,
      hostname: string,
      now: number,
      refused: (e: Refusal) => Effect.Effect<R>
    ) =>
      Effect.gen(function* () {
        const decision = yield* decide(table, login, hostname, now)
        if (Either.isRight(decision)) return { reply: Either.void as Either.Either<void, R | PresenceUnavailable>, state: decision.right }
        const e = decision.left
        if (!isRefusal(e)) return { reply: Either.left(e), state: table }
        return { reply: Either.left(yield* refused(e)), state: table }
      })

    const behaviour = Actor.behaviour<PresenceMessage>()({
      init: load(),
      // A defect may strike between a store write and the commit: reload membership from the
      // store, keeping the expiries of leases we still agree on.
      onDefect: (last: Table) => load(last),
      receive: {
        RequestLogin: (state, { login, hostname }) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const table = yield* expire(state, now)
            return yield* decideOrRefuse(table, login, hostname, now, (e) =>
              Effect.as(
                Effect.zipRight(
                  Effect.sync(() => metrics.loginFailed.inc({ reason: e.reason })),
                  Effect.logInfo(`presence: login of ${login} on ${hostname} refused: ${e.message}`)
                ),
                new LoginRefused({ login, hostname, ...e })
              )
            )
          }),
        Heartbeat: (state, { login, hostname }) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const table = yield* expire(state, now)
            const lease = table.byLogin.get(login)
            if (lease !== undefined && lease.hostname === hostname) {
              metrics.leaseAge.observe((now - lease.refreshedAt) / 1000)
            }
            return yield* decideOrRefuse(table, login, hostname, now, (e) =>
              Effect.as(
                Effect.zipRight(
                  Effect.sync(() => metrics.heartbeatRefused.inc({ reason: e.reason })),
                  Effect.logWarning(`presence: heartbeat of ${login} from ${hostname} refused: ${e.message}`)
                ),
                new HeartbeatRefused({ login, hostname, ...e })
              )
            )
          }),
        Logout: (state, { login, hostname }) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const table = yield* expire(state, now)
            const lease = table.byLogin.get(login)
            if (lease === undefined || lease.hostname !== hostname) {
              const reason = lease === undefined ? "not_logged_in" : "wrong_host"
              return {
                reply: Either.left(new LogoutRefused({ login, hostname, reason, message: logoutText[reason] })),
                state: table
              }
            }
            removing.add(login)
            const stored = yield* Effect.either(bounded(`remove ${login}`, store.remove([login]))).pipe(
              Effect.ensuring(Effect.sync(() => removing.delete(login)))
            )
            if (Either.isLeft(stored)) return { reply: Either.left(stored.left), state: table }
            yield* publisher.publish([deleteOf(login)])
            return { reply: Either.void, state: yield* committed(released(table, [login])) }
          }),
        List: (state) =>
          Effect.gen(function* () {
            const table = yield* expire(state, yield* Clock.currentTimeMillis)
            const list: Record<string, string> = {}
            for (const lease of table.byLogin.values()) list[lease.login] = lease.hostname
            return { reply: Either.right(list), state: table }
          }),
        Expire: (state) =>
          Effect.gen(function* () {
            return { state: yield* expire(state, yield* Clock.currentTimeMillis) }
          })
      }
    })

    // `<supervisor>/leases`: the subsystem's supervisor is `/root/presence`.
    const ref = yield* Actor.make("leases", behaviour)

    const touch = (login: string, hostname: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const lease = current?.byLogin.get(login)
          if (lease === undefined || lease.hostname !== hostname || removing.has(login)) return false
          const last = seen.get(login)
          const refreshedAt = last !== undefined && last.hostname === hostname ? Math.max(last.at, lease.refreshedAt) : lease.refreshedAt
          metrics.leaseAge.observe((now - refreshedAt) / 1000)
          seen.set(login, { hostname, at: Math.max(now, refreshedAt) })
          return true
        })
      )

    // The expiry timer: sleeps until the earliest expiry (restarted whenever it moves), then
    // asks the actor to expire. A failed tell (mailbox full) is retried: the next request
    // would expire the lease anyway, but an idle table must still free its hosts.
    const fire = (at: number) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (at > now) yield* Effect.sleep(at - now)
        yield* ref.tell(new Expire()).pipe(Effect.retry(Schedule.spaced("100 millis")), Effect.ignore)
      })
    // A supervised loop (`<supervisor>/expiry`); a restarted one re-arms from the current `wakeAt`.
    yield* supervisedLoop(
      "expiry",
      Stream.runDrain(
        Stream.flatMap(
          wakeAt.changes,
          (next) => (Option.isNone(next) ? Stream.empty : Stream.fromEffect(fire(next.value))),
          { switch: true }
        )
      )
    )
    const actor: PresenceActor = { ref, touch }
    return actor
  })
