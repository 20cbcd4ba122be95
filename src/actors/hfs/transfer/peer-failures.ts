import { Duration, Effect } from "effect"
import { BadFrame, DiskFull, TransferInterrupted, TransferIoError, TransferTimeout } from "./errors.js"
import type { ReadEnd } from "./socket-io.js"

// The failures both ends of a transfer meet in the same way: a file operation that failed,
// the peer's connection ending, the peer going quiet. `peer` names the other end in messages.

export type Peer = "source" | "destination"

/** A failed file operation as a transfer error: no space left is DiskFull, anything else TransferIoError. */
export const fileFailure = (path: string, op: string, err: unknown): TransferIoError | DiskFull => {
  const code = errorCode(err)
  return code === "ENOSPC" || code === "EDQUOT"
    ? new DiskFull({ path, neededBytes: 0, availableBytes: 0, message: `${op} of ${path}: no space left (${code})` })
    : ioFailure(path, op, err)
}

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
    Effect.timeoutFail(effect, { duration: idle, onTimeout: () => idleTimeout(login, peer, phase, idle) })

/**
 * Fails with `timeout()` once `progress()` stayed the same for `idle` while `waiting()` said
 * the peer is the one we wait for (checked on the Clock every eighth of `idle`, so the bound
 * is met within an eighth). For a pipeline that waits for the peer in callbacks rather than
 * in one effect per frame: race it with the pipeline.
 */
export const idleWatch = <E>(idle: Duration.Duration, progress: () => number, waiting: () => boolean, timeout: () => E): Effect.Effect<never, E> =>
  Effect.gen(function* () {
    const step = Duration.millis(Math.max(1, Duration.toMillis(idle) / 8))
    let last = progress()
    let quiet = 0
    for (;;) {
      yield* Effect.sleep(step)
      const p = progress()
      if (p !== last || !waiting()) {
        last = p
        quiet = 0
      } else if (++quiet >= 8) return yield* Effect.fail(timeout())
    }
  })

/** The TransferTimeout of `login` waiting for `peer` for `idle` in `phase`. */
export const idleTimeout = (login: string, peer: Peer, phase: string, idle: Duration.Duration): TransferTimeout =>
  new TransferTimeout({
    login,
    phase,
    seconds: Duration.toSeconds(idle),
    message: `transfer of ${login}: ${peer === "source" ? "nothing from the source" : "the destination took nothing"} for ${Duration.format(idle)} (${phase})`
  })
