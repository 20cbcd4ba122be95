import { Either, ParseResult, Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import type { Group } from "../../protocols/udb.js"
import { Secret } from "../../runtime/secret.js"

// `hfs-server.yml` (the original's keys where they still mean something) and the two secrets:
// `hfs-client.yml` signs getHome (PAM on user machines, other HFS), `hfs-status.yml` signs the
// read-only rpcs (operators, the web map), so that a reader cannot create or move homes.

const exact = { parseOptions: { onExcessProperty: "error" } } as const

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }

/** `2G`, `512M`, `1073741824`: a byte count (binary units). */
export const parseBytes = (input: string | number): Either.Either<number, string> => {
  if (typeof input === "number") {
    return Number.isSafeInteger(input) && input >= 0 ? Either.right(input) : Either.left(`${input} is not a byte count`)
  }
  const m = /^([0-9]+)\s*([KMGT]?)i?B?$/i.exec(input.trim())
  if (m === null) return Either.left(`${JSON.stringify(input)} is not a size (e.g. 2G, 512M, 1073741824)`)
  const bytes = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!
  return Number.isSafeInteger(bytes) ? Either.right(bytes) : Either.left(`${input} is too large`)
}

const Bytes = Schema.transformOrFail(Schema.Union(Schema.String, Schema.Number), Schema.Number, {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parseBytes(input), {
      onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, input, message)),
      onRight: ParseResult.succeed
    }),
  encode: ParseResult.succeed
}).annotations({ description: "a size such as 2G, 512M or a number of bytes" })

const Port = Schema.Int.pipe(Schema.between(0, 65535)).annotations({ description: "a TCP port (0-65535)" })
const Ipv4 = Schema.String.pipe(Schema.pattern(/^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/)).annotations({
  description: "an IPv4 address"
})

export const HfsServerProfile = Schema.Struct({
  /** Homes in `<export_base>/hfs<id>/<login>.nbd`. */
  export_base: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/export/hfs" }),
  /** The contest set of homes (`contest_enabled`), kept apart from the others as the original's hfscontest. */
  export_base_contest: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/export/hfscontest" }),
  contest_enabled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Skeleton of new homes; `<skeleton>/<group>` replaces it for that group when it exists. */
  skeleton: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/export/skeleton" }),
  /** Image size by user type (the original's 2 GiB user, 5 GiB orga and root). */
  quota: Schema.optionalWith(
    Schema.Struct({
      user: Schema.optionalWith(Bytes, { default: () => 2 * 1024 ** 3 }),
      orga: Schema.optionalWith(Bytes, { default: () => 5 * 1024 ** 3 }),
      root: Schema.optionalWith(Bytes, { default: () => 5 * 1024 ** 3 })
    }).annotations(exact),
    { default: () => ({ user: 2 * 1024 ** 3, orga: 5 * 1024 ** 3, root: 5 * 1024 ** 3 }) }
  ),
  /** Space kept free when creating a home, so that existing (sparse) homes can grow. */
  free_reserve: Schema.optionalWith(Bytes, { default: () => 1024 ** 3 }),
  /** gid of a home's files: `user` for contestants, `orga` for orga and root (the original's rule). */
  group_gids: Schema.optionalWith(
    Schema.Struct({
      user: Schema.optionalWith(Schema.Int, { default: () => 10000 }),
      orga: Schema.optionalWith(Schema.Int, { default: () => 10001 })
    }).annotations(exact),
    { default: () => ({ user: 10000, orga: 10001 }) }
  ),
  /** The rpc port of each HFS, on its own address (the original's 20100). */
  rpc_port: Schema.optionalWith(Port, { default: () => 20100 }),
  /** The one NBD listener of each HFS, on its own address. */
  nbd_port: Schema.optionalWith(Port, { default: () => 10809 }),
  /**
   * Bind HFS `<id>` here instead of the address of its `hfs<id>` alias in MDB (the dev loop,
   * where MDB holds LAN addresses this machine does not have). Leave out in production.
   */
  bind: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Ipv4 }), { default: () => ({}) }),
  /**
   * A client machine that died (no FIN, no RST) keeps its NBD connection, hence its home's
   * grant, until TCP gives up: keepalive probes after `idle_seconds` of silence, every
   * `interval_seconds`, `count` of them unanswered and the connection is cut (unacknowledged
   * writes too: TCP_USER_TIMEOUT of the same bound). Default: cut within 20 s.
   */
  nbd_keepalive: Schema.optionalWith(
    Schema.Struct({
      idle_seconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 3600)), { default: () => 10 }),
      interval_seconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 600)), { default: () => 2 }),
      count: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 50)), { default: () => 5 })
    }).annotations(exact),
    { default: () => ({ idle_seconds: 10, interval_seconds: 2, count: 5 }) }
  ),
  /** Each HFS's transfer listener (the source side of a migration), on its own address. */
  transfer_port: Schema.optionalWith(Port, { default: () => 20101 }),
  /**
   * A grant is live (its home is not moved away) while an NBD client is attached, or for this
   * long after getHome answered it (PAM mounts right after): a home is never moved under a user.
   */
  live_grant_seconds: Schema.optionalWith(Schema.Number.pipe(Schema.nonNegative()), { default: () => 30 }),
  /**
   * Old copies of homes that moved to another HFS, kept in `<export_base>/hfs<id>/.retired/`
   * (the original kept `backup_<login>.nbd` forever): at most `count` per login, none older
   * than `seconds`; pruned every `sweep_seconds`. `count: 0` deletes at once.
   */
  retention: Schema.optionalWith(
    Schema.Struct({
      count: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 100)), { default: () => 1 }),
      seconds: Schema.optionalWith(Schema.Number.pipe(Schema.nonNegative()), { default: () => 86400 }),
      sweep_seconds: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 60 })
    }).annotations(exact),
    { default: () => ({ count: 1, seconds: 86400, sweep_seconds: 60 }) }
  ),
  /** A user's HfsActor is passivated after this long without a request (its export stays). */
  idle_seconds: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 600 })
}).annotations(exact)
export type HfsServerProfile = typeof HfsServerProfile.Type

export const loadHfsServerProfile = loadProfile("hfs-server", HfsServerProfile)

/** `hfs-client.yml`: the getHome secret, and the port PAM reaches `hfs<id>` on. */
export const HfsClientProfile = Schema.Struct({
  shared_secret: Secret,
  rpc_port: Schema.optionalWith(Port, { default: () => 20100 })
}).annotations(exact)
export const loadHfsClientProfile = loadProfile("hfs-client", HfsClientProfile)

export const HfsStatusProfile = Schema.Struct({ shared_secret: Secret }).annotations(exact)
export const loadHfsStatusProfile = loadProfile("hfs-status", HfsStatusProfile)

export const quotaOf = (profile: HfsServerProfile, group: Group): number => profile.quota[group]
export const gidOf = (profile: HfsServerProfile, group: Group): number =>
  group === "user" ? profile.group_gids.user : profile.group_gids.orga
