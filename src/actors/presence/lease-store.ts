import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { PresenceUnavailable } from "../../protocols/presence.js"

// Where leases survive a presence restart. Only membership is stored (who holds which host,
// since when): a refresh is a heartbeat every few seconds per machine and would cost a write
// each, while a restart extends every stored lease by a whole period anyway. So the store
// changes exactly when the table's membership does: login accepted, logout, expiry.

export interface StoredLease {
  readonly login: string
  readonly hostname: string
  /** Epoch millis. */
  readonly since: number
}

export interface LeaseStoreService {
  readonly load: Effect.Effect<ReadonlyArray<StoredLease>, PresenceUnavailable>
  /**
   * Records that `login` now holds `hostname` (moving it from its previous host). A row of
   * another login on `hostname` is dropped: the actor asks only for hosts its table has free,
   * so such a row is left by an earlier write that timed out but committed later.
   */
  readonly put: (lease: StoredLease) => Effect.Effect<void, PresenceUnavailable>
  readonly remove: (logins: ReadonlyArray<string>) => Effect.Effect<void, PresenceUnavailable>
}

export interface MemoryLeaseStore {
  readonly layer: Layer.Layer<LeaseStore>
  readonly rows: Map<string, StoredLease>
  /** Set to make every call fail as a dead database would. */
  down: boolean
  /** Run before every call when set: e.g. wait on a gate, as a stalled database would. */
  before: Effect.Effect<void> | undefined
}

export class LeaseStore extends Context.Tag("prolo/presence/LeaseStore")<LeaseStore, LeaseStoreService>() {
  /** The `presence_lease` table of the node's database. */
  static readonly sql: Layer.Layer<LeaseStore, never, SqlClient.SqlClient> = Layer.effect(
    LeaseStore,
    Effect.map(SqlClient.SqlClient, (sql) => {
      const unavailable = (what: string) => (e: unknown) =>
        new PresenceUnavailable({
          message: `presence database: cannot ${what}: ${e instanceof Error ? e.message : String(e)}; nothing changed, retry`
        })
      return {
        load: sql<{ login: string; hostname: string; since: Date }>`
          SELECT login, hostname, since FROM presence_lease`.pipe(
          Effect.map((rows) => rows.map((r) => ({ login: r.login, hostname: r.hostname, since: r.since.getTime() }))),
          Effect.mapError(unavailable("load leases"))
        ),
        // One transaction: drop a stale holder of the host, then upsert (UNIQUE (hostname)
        // still guards against two holders).
        put: (lease) =>
          sql
            .withTransaction(
              Effect.zipRight(
                sql`DELETE FROM presence_lease WHERE hostname = ${lease.hostname} AND login <> ${lease.login}`,
                sql`INSERT INTO presence_lease (login, hostname, since)
                    VALUES (${lease.login}, ${lease.hostname}, ${new Date(lease.since)})
                    ON CONFLICT (login) DO UPDATE SET hostname = EXCLUDED.hostname, since = EXCLUDED.since`
              )
            )
            .pipe(Effect.asVoid, Effect.mapError(unavailable(`record ${lease.login} on ${lease.hostname}`))),
        remove: (logins) =>
          logins.length === 0
            ? Effect.void
            : sql`DELETE FROM presence_lease WHERE login IN ${sql.in(logins)}`.pipe(
                Effect.asVoid,
                Effect.mapError(unavailable(`remove ${logins.join(", ")}`))
              )
      }
    })
  )

  /** In memory, with a switch that makes every call fail as a dead database would (tests, bench). */
  static readonly memory = (): MemoryLeaseStore => {
    const rows = new Map<string, StoredLease>()
    const handle: MemoryLeaseStore = {
      rows,
      down: false,
      before: undefined,
      layer: Layer.sync(LeaseStore, (): LeaseStoreService => {
        const guard = <A>(f: () => A): Effect.Effect<A, PresenceUnavailable> =>
          Effect.suspend(() =>
            Effect.zipRight(
              handle.before ?? Effect.void,
              Effect.suspend(() =>
                handle.down ? Effect.fail(new PresenceUnavailable({ message: "presence database: down (test)" })) : Effect.sync(f)
              )
            )
          )
        return {
          load: guard(() => [...rows.values()]),
          put: (lease) =>
            guard(() => {
              for (const row of [...rows.values()]) {
                if (row.hostname === lease.hostname && row.login !== lease.login) rows.delete(row.login)
              }
              rows.set(lease.login, lease)
            }),
          remove: (logins) =>
            guard(() => {
              for (const login of logins) rows.delete(login)
            })
        }
      })
    }
    return handle
  }
}
