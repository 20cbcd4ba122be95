import { Context, Effect, Either, Layer, Schema } from "effect"
import { execFile } from "node:child_process"
import { readdir, readFile } from "node:fs/promises"
import * as path from "node:path"
import { decodePamSession, PAM_STATE_DIR } from "../../protocols/pam-session.js"

// Who is logged in on this machine. systemd-logind knows every session with its uid; `who`
// (the original's source, utmp) is the fallback when loginctl is missing or fails. Only
// Prologin users count: uid in [10000, 20000) (spec presence.md §3). Plus every user prolo-pam
// holds a home grant for here (its session files, src/protocols/pam-session.ts): the lease must
// last as long as the home is attached to this machine, whatever logind or utmp say.

export const PROLOGIN_UID_MIN = 10000
export const PROLOGIN_UID_MAX = 19999

export const isProloginUid = (uid: number): boolean => Number.isInteger(uid) && uid >= PROLOGIN_UID_MIN && uid <= PROLOGIN_UID_MAX

export class SessionSourceError extends Schema.TaggedError<SessionSourceError>()("SessionSourceError", {
  message: Schema.String
}) {}

export interface SessionSourceService {
  /** The Prologin users with a session now, deduplicated and sorted. */
  readonly users: Effect.Effect<ReadonlyArray<string>, SessionSourceError>
}

export class SessionSource extends Context.Tag("prolo/presenced/SessionSource")<SessionSource, SessionSourceService>() {}

/** `loginctl list-sessions --output json`: `[{"session","uid","user","seat","tty",…}]`. */
export const parseLoginctlJson = (text: string): Either.Either<ReadonlyArray<{ readonly user: string; readonly uid: number }>, string> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return Either.left(`loginctl output is not JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (!Array.isArray(value)) return Either.left("loginctl output is not a JSON list")
  const sessions: Array<{ user: string; uid: number }> = []
  for (const item of value) {
    if (typeof item !== "object" || item === null) return Either.left("loginctl session is not an object")
    const { user, uid } = item as Record<string, unknown>
    if (typeof user !== "string" || typeof uid !== "number") return Either.left("loginctl session without user/uid")
    sessions.push({ user, uid })
  }
  return Either.right(sessions)
}

/** `who -q`: the names on its first line (the original's parsing). */
export const parseWhoQ = (text: string): ReadonlyArray<string> => (text.split("\n", 1)[0] ?? "").split(/\s+/).filter((n) => n !== "")

/** name → uid from passwd(5) text; malformed lines are skipped. */
export const parsePasswd = (text: string): ReadonlyMap<string, number> => {
  const uids = new Map<string, number>()
  for (const line of text.split("\n")) {
    const fields = line.split(":")
    const uid = Number(fields[2])
    if (fields.length >= 7 && fields[0] !== undefined && fields[0] !== "" && Number.isInteger(uid)) uids.set(fields[0], uid)
  }
  return uids
}

const unique = (names: Iterable<string>) => [...new Set(names)].sort()

export type CommandRunner = (command: string, args: ReadonlyArray<string>) => Effect.Effect<string, string>

export const execRunner: CommandRunner = (command, args) =>
  Effect.async<string, string>((resume) => {
    const child = execFile(command, [...args], { timeout: 10_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error !== null) resume(Effect.fail(`${command} ${args.join(" ")}: ${stderr.trim().split("\n", 1)[0] || error.message}`))
      else resume(Effect.succeed(stdout))
    })
    return Effect.sync(() => child.kill())
  })

export interface SystemSessionOptions {
  readonly run?: CommandRunner
  /** Where `who` names are resolved to uids. */
  readonly passwdFile?: string
  /** prolo-pam's session files (default /run/prolo-pam); a missing directory holds none. */
  readonly pamStateDir?: string
}

/** Logins with a prolo-pam session file in `dir` (unreadable or foreign files are skipped). */
export const pamSessionUsers = (dir: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.promise(async () => {
    const names = await readdir(dir).catch(() => [] as Array<string>)
    const logins: Array<string> = []
    for (const name of names) {
      const text = await readFile(path.join(dir, name), "utf8").catch(() => "")
      const session = decodePamSession(text)
      if (session._tag === "Right" && session.right.login === name && isProloginUid(session.right.uid)) logins.push(name)
    }
    return logins
  })

/** The sessions of this machine: loginctl first, `who -q` + passwd when loginctl fails. */
export const systemSessions = (options: SystemSessionOptions = {}): SessionSourceService => {
  const run = options.run ?? execRunner
  const passwdFile = options.passwdFile ?? "/etc/passwd"
  const fromLoginctl = run("loginctl", ["list-sessions", "--no-legend", "--output", "json"]).pipe(
    Effect.flatMap((out) => Either.mapLeft(parseLoginctlJson(out), (reason) => reason)),
    Effect.map((sessions) => unique(sessions.filter((s) => isProloginUid(s.uid)).map((s) => s.user)))
  )
  const fromWho = Effect.gen(function* () {
    const names = parseWhoQ(yield* run("who", ["-q"]))
    if (names.length === 0) return []
    const passwd = yield* Effect.tryPromise({ try: () => readFile(passwdFile, "utf8"), catch: (e) => `cannot read ${passwdFile}: ${String(e)}` })
    const uids = parsePasswd(passwd)
    return unique(names.filter((n) => isProloginUid(uids.get(n) ?? -1)))
  })
  const fromPam = pamSessionUsers(options.pamStateDir ?? PAM_STATE_DIR)
  return {
    users: fromLoginctl.pipe(
      Effect.catchAll((loginctl) =>
        fromWho.pipe(
          Effect.tap(() => Effect.logDebug(`presenced: loginctl unusable (${loginctl}), used who`)),
          Effect.mapError((who) => new SessionSourceError({ message: `cannot list sessions: ${loginctl}; fallback: ${who}` }))
        )
      ),
      Effect.zipWith(fromPam, (system, pam) => unique([...system, ...pam]))
    )
  }
}

export const SystemSessionsLive = Layer.sync(SessionSource, () => systemSessions())
