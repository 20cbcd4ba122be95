import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { decodePamSession, encodePamSession, type PamSession } from "../../protocols/pam-session.js"

// The session files of prolo-pam (format: src/protocols/pam-session.ts): `<dir>/<login>`,
// root-only (the grant's export name carries the secret), replaced atomically; beside it
// `<dir>/<login>.d/`, the work directory of that session's nbdfuse.

export const sessionFile = (dir: string, login: string) => path.join(dir, login)
export const workDirOf = (dir: string, login: string) => path.join(dir, `${login}.d`)

export const readSession = (dir: string, login: string): Effect.Effect<PamSession | null> =>
  Effect.sync(() => {
    let text: string
    try {
      text = fs.readFileSync(sessionFile(dir, login), "utf8")
    } catch {
      return null
    }
    const decoded = decodePamSession(text)
    // A file we cannot read back is treated as absent: the stages start over from presence.
    return Either.isRight(decoded) && decoded.right.login === login ? decoded.right : null
  })

export const writeSession = (dir: string, session: PamSession): Effect.Effect<void> =>
  Effect.sync(() => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    fs.chmodSync(dir, 0o700)
    const target = sessionFile(dir, session.login)
    const temp = `${target}.tmp-${process.pid}`
    fs.writeFileSync(temp, encodePamSession(session), { mode: 0o600 })
    fs.renameSync(temp, target)
  })

/**
 * Removes the session file and its work directory. Never recursive: a FUSE mount still there
 * (a detach that failed) keeps its directory rather than have rm walk into it.
 */
export const removeSession = (dir: string, login: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const work = workDirOf(dir, login)
    for (const name of ["nbdfuse.pid", "nbdfuse.log"]) fs.rmSync(path.join(work, name), { force: true })
    for (const d of [path.join(work, "fuse"), work]) {
      try {
        fs.rmdirSync(d)
      } catch {
        // absent, or still a mount point
      }
    }
    fs.rmSync(sessionFile(dir, login), { force: true })
  })
