import { Duration, Effect } from "effect"
import { BadFrame, TransferInterrupted, TransferIoError, TransferTimeout } from "./errors.js"
import type { ReadEnd } from "./socket-io.js"

// The failures both ends of a transfer meet in the same way: a file operation that failed,
// the peer's connection ending, the peer going quiet. `peer` names the other end in messages.

export type Peer = "source" | "destination"

/** The errno name of a Node error (`ENOENT`), EIO when it has none. */
export const errorCode = (err: unknown): string =>
  typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : "EIO"

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

export const ioFailure = (path: string, op: string, err: unknown): TransferIoError =>
  new TransferIoError({ path, op, code: errorCode(err), message: `${op} of ${path}: ${errorText(err)}` })

/** Why the connection to `peer` gave no more frames: bytes that were not a frame, or the connection lost. */
export const connectionEnded =
  (login: string, peer: Peer) =>
  (end: ReadEnd): BadFrame | TransferInterrupted =>
    end._tag === "Bad"
      ? new BadFrame({ reason: end.reason, message: `transfer of ${login || "?"}: unreadable frame from the ${peer}, connection closed: ${end.reason}` })
      : new TransferInterrupted({ login, message: `transfer of ${login || "?"}: connection to the ${peer} lost: ${end.message}` })

/** `effect` (a read from or a write to `peer`) failing with TransferTimeout when the peer is quiet for `idle`. */
export const peerIdle =
  (login: string, peer: Peer, phase: string, idle: Duration.Duration) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TransferTimeout, R> =>
    Effect.timeoutFail(effect, {
      duration: idle,
      onTimeout: () =>
        new TransferTimeout({
          login,
          phase,
          seconds: Duration.toSeconds(idle),
          message: `transfer of ${login}: ${peer === "source" ? "nothing from the source" : "the destination took nothing"} for ${Duration.format(idle)} (${phase})`
        })
    })
