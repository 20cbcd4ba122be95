import { Duration, Effect, type Redacted } from "effect"
import { type Handover, HfsRpcs, HfsUnavailable, type MigrateError } from "../../protocols/hfs.js"
import { makeRpcTcpClient } from "../../runtime/rpc-tcp.js"

// Calls from one HFS to another over authenticated rpc/TCP (the HFS secret, the peer's rpc
// port on its `hfs<id>` address). Every call has a deadline (Clock): a peer that is down or
// stuck is `HfsUnavailable`, never a hang (the original's migrate request had no timeout and
// two HFS migrating to each other blocked both forever, spec hfs.md weakness 14).

export interface Peers {
  /** Asks HFS `from` (the home's) to fence `login` and open it to HFS `to`'s transfer. */
  readonly handOver: (from: number, login: string, to: number) => Effect.Effect<Handover, MigrateError>
  /** Tells HFS `on` that the home of `login` moved away (it retires its copy). */
  readonly movedAway: (on: number, login: string) => Effect.Effect<void, HfsUnavailable>
}

export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export const CALL_TIMEOUT = Duration.seconds(30)

const TAGS: ReadonlySet<string> = new Set(["InvalidHfsRequest", "HomeNotFound", "UnknownUser", "WrongHfs", "HomeElsewhere", "HomeInUse", "HfsUnavailable", "OutOfSpace"])

export const makePeers = (options: {
  readonly secret: Redacted.Redacted<string>
  /** The rpc address of HFS `id` (its `hfs<id>` address and rpc port). */
  readonly locate: (id: number) => Effect.Effect<PeerAddress, HfsUnavailable>
  readonly timeout?: Duration.DurationInput
}): Peers => {
  const withClient = <A>(id: number, what: string, body: (address: PeerAddress) => Effect.Effect<A, unknown>) =>
    Effect.flatMap(options.locate(id), (address) =>
      body(address).pipe(
        Effect.timeoutFail({
          duration: options.timeout ?? CALL_TIMEOUT,
          onTimeout: () => new HfsUnavailable({ message: `hfs${id} (${address.host}:${address.port}) did not answer ${what} in time; retry` })
        })
      )
    )
  const passThrough = (id: number, what: string) => (e: unknown) => {
    const tag = typeof e === "object" && e !== null && "_tag" in e ? String((e as { _tag: unknown })._tag) : ""
    if (TAGS.has(tag)) return e as MigrateError
    const message = typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e)
    return new HfsUnavailable({ message: `hfs${id} cannot be reached for ${what} (${tag || "error"}: ${message}); retry` })
  }
  return {
    handOver: (from, login, to) =>
      withClient(from, "a hand-over", (address) =>
        Effect.scoped(Effect.flatMap(makeRpcTcpClient(HfsRpcs, { ...address, secret: options.secret }), (c) => c.handOver({ login, to })))
      ).pipe(Effect.mapError(passThrough(from, `the hand-over of ${login}`))),
    movedAway: (on, login) =>
      withClient(on, "moved-away", (address) =>
        Effect.scoped(Effect.flatMap(makeRpcTcpClient(HfsRpcs, { ...address, secret: options.secret }), (c) => c.movedAway({ login })))
      ).pipe(
        Effect.mapError((e) => {
          const mapped = passThrough(on, `telling it that ${login} moved away`)(e)
          return mapped._tag === "HfsUnavailable" ? mapped : new HfsUnavailable({ message: mapped.message })
        })
      )
  }
}
