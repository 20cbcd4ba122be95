import { Clock, Duration, Effect, Fiber, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { HomeGrant } from "../../protocols/hfs.js"
import type { PamSession } from "../../protocols/pam-session.js"
import { runTool } from "../../runtime/run-tool.js"
import { describeTarget } from "../presenced/client.js"
import type { PamClients, PamTargets } from "./clients.js"
import { isProloginUid } from "../presenced/sessions.js"
import { attach, deviceOf, detach, isMounted, mountHome, unmountHome } from "./attach.js"
import { readSession, removeSession, workDirOf, writeSession } from "./state.js"

// The three PAM stages prolo-pam handles (pam_exec: PAM_TYPE), for contest users only.
//
//   account        presence says yes (else the original's "Login forbidden: <reason>"), the
//                  HFS of this machine grants the home (getHome; it may move the home first),
//                  the home is attached and mounted at /home/<login>. The grant and what was
//                  attached go to the session file, so that open_session asks nobody again.
//   open_session   the home mounted by account is there: done. Else (no account stage ran, or
//                  it was long ago) attach and mount with the kept grant, or do account's work.
//   close_session  kill the user's processes, sync, unmount, detach, log out of presence;
//                  every step is tried even when one fails.
//
// Every failure is ONE line for the greeter, naming what failed, and a non-zero exit status
// (pam_exec then denies); nothing stays attached or mounted after a failed stage.

/** Exit statuses: PAM's own codes for what happened (pam_exec turns any non-zero into a denial). */
export const EXIT = { ok: 0, systemError: 4, permissionDenied: 6, unavailable: 9 } as const

export class PamFailure extends Schema.TaggedError<PamFailure>()("PamFailure", {
  code: Schema.Int,
  message: Schema.String
}) {}

const failWith = (code: number, message: string) => new PamFailure({ code, message })

export interface PamContext extends PamTargets {
  readonly clients: PamClients
  /** This machine's MDB hostname. */
  readonly hostname: string
  /** One progress line for the greeter (stdout under pam_exec's `stdout`). */
  readonly say: (line: string) => Effect.Effect<void>
}

export interface UserAccount {
  readonly login: string
  readonly uid: number
  readonly gid: number
}

/** The local account (getent: whatever NSS says), or null when there is none. */
export const lookupAccount = (login: string): Effect.Effect<UserAccount | null> =>
  Effect.map(runTool(["getent", "passwd", login], 10_000), (r) => {
    if (r.code !== 0) return null
    const fields = r.output.split("\n")[0]?.split(":") ?? []
    const uid = Number(fields[2])
    const gid = Number(fields[3])
    return fields.length >= 7 && fields[0] === login && Number.isInteger(uid) && Number.isInteger(gid) ? { login, uid, gid } : null
  })

/** Users prolo-pam handles: contest uids (10000-19999), any service but `systemd-user`. */
export const handles = (service: string, account: UserAccount | null): account is UserAccount =>
  service !== "systemd-user" && account !== null && isProloginUid(account.uid)

/** `PROLO_PAM_TRACE=1 prolo-pam …` (an operator running it by hand): each step's time on stderr. */
const traced = <A, E, R>(step: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  process.env.PROLO_PAM_TRACE === "1"
    ? Effect.suspend(() => {
        const started = performance.now()
        return Effect.ensuring(effect, Effect.sync(() => process.stderr.write(`prolo-pam: ${step} ${(performance.now() - started).toFixed(1)} ms\n`)))
      })
    : effect

const firstLine = (text: string) => text.split("\n").find((l) => l.trim() !== "")?.trim() ?? text

const CALL_TIMEOUT = Duration.seconds(15)

// ---- presence ---------------------------------------------------------------------------------

const requestLogin = (ctx: PamContext, login: string) =>
  Effect.scoped(
    Effect.flatMap(ctx.clients.presence, (client) => client.RequestLogin({ login, hostname: ctx.hostname }))
  ).pipe(
    Effect.timeoutFail({ duration: CALL_TIMEOUT, onTimeout: () => ({ _tag: "Timeout" as const, message: `no answer within ${Duration.format(CALL_TIMEOUT)}` }) }),
    Effect.mapError((e) =>
      e._tag === "LoginRefused" || e._tag === "InvalidPresenceRequest"
        ? failWith(EXIT.permissionDenied, `Login forbidden: ${e.message}`)
        : failWith(EXIT.unavailable, `Login impossible: presence unreachable (${describeTarget(ctx.presence)}): ${firstLine(e.message)}`)
    )
  )

/** Best effort: a logout presence cannot take is reported, never fatal (the lease ends anyway). */
const logout = (ctx: PamContext, login: string) =>
  Effect.scoped(Effect.flatMap(ctx.clients.presence, (client) => client.Logout({ login, hostname: ctx.hostname }))).pipe(
    Effect.timeoutFail({ duration: CALL_TIMEOUT, onTimeout: () => ({ _tag: "Timeout" as const, message: `no answer within ${Duration.format(CALL_TIMEOUT)}` }) }),
    Effect.catchTag("LogoutRefused", () => Effect.void), // not logged in (lease over) or elsewhere now: nothing of ours to end
    Effect.mapError((e) => `presence logout (${describeTarget(ctx.presence)}): ${firstLine(e.message)}`)
  )

// ---- home ------------------------------------------------------------------------------------

/** Which HFS serves this machine: MDB's public query, as the original client. */
const machineHfs = (ctx: PamContext) =>
  Effect.scoped(
    Effect.flatMap(ctx.clients.mdb, (client) => client.query({ filters: { hostname: ctx.hostname } }))
  ).pipe(
    Effect.timeoutFail({ duration: CALL_TIMEOUT, onTimeout: () => ({ _tag: "Timeout" as const, message: `no answer within ${Duration.format(CALL_TIMEOUT)}` }) }),
    Effect.mapError((e) => failWith(EXIT.unavailable, `Login impossible: machine database unreachable (${ctx.profile.mdb_url}): ${firstLine(e.message)}`)),
    Effect.flatMap((machines) =>
      machines.length === 1
        ? Effect.succeed(machines[0]!.hfs)
        : Effect.fail(failWith(EXIT.permissionDenied, `Login forbidden: ${ctx.hostname} is not a registered machine`))
    )
  )

const getHome = (ctx: PamContext, login: string, hfs: number): Effect.Effect<HomeGrant, PamFailure> => {
  const host = `hfs${hfs}`
  const timeout = Duration.seconds(ctx.profile.home_timeout_seconds)
  return Effect.scoped(
    Effect.flatMap(ctx.clients.hfs(host), (client) => client.getHome({ login, hostname: ctx.hostname }))
  ).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ _tag: "Timeout" as const, message: `no answer within ${Duration.format(timeout)}` }) }),
    Effect.mapError((e) => {
      switch (e._tag) {
        case "RpcClientError":
        case "Timeout":
          return failWith(EXIT.unavailable, `Login impossible: home server ${host} unreachable (${host}:${ctx.hfsClient.rpc_port}): ${firstLine(e.message)}`)
        case "HfsUnavailable":
          return failWith(EXIT.unavailable, `Login impossible: home server ${host} cannot answer now, retry: ${firstLine(e.message)}`)
        case "HomeInUse":
          return failWith(EXIT.unavailable, `Login impossible: your home is still in use on ${e.hostname}: ${firstLine(e.message)}`)
        case "HomeElsewhere":
          return failWith(EXIT.unavailable, `Login impossible: your home stays on hfs${e.hfs}: ${firstLine(e.message)}`)
        default:
          return failWith(EXIT.systemError, `Login impossible: home server ${host}: ${firstLine(e.message)}`)
      }
    })
  )
}

/**
 * A line every few seconds while `effect` runs: getHome may first move the home from another
 * HFS (its answer carries no progress), and a silent greeter looks hung.
 */
export const withProgress = <A, E>(ctx: PamContext, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeMillis
    const tick = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      ctx.say(`Still preparing your home (it may be moving from another home server)… ${Math.round((now - started) / 1000)} s`)
    )
    const ticker = yield* Effect.fork(Effect.forever(Effect.delay(tick, PROGRESS_EVERY)))
    return yield* Effect.ensuring(effect, Fiber.interrupt(ticker))
  })

const PROGRESS_EVERY = Duration.seconds(3)

const mountpointOf = (ctx: PamContext, login: string) => path.join(ctx.profile.home_base, login)

/** Attaches and mounts with the session's grant; on failure nothing stays attached or mounted. */
const attachAndMount = (ctx: PamContext, session: PamSession & { readonly grant: HomeGrant }) =>
  Effect.gen(function* () {
    const dir = ctx.profile.state_dir
    const attachment = yield* attach(ctx.profile.attach, session.grant, workDirOf(dir, session.login))
    yield* writeSession(dir, { ...session, attachment })
    const mountpoint = mountpointOf(ctx, session.login)
    yield* mountHome(deviceOf(attachment)!, mountpoint, session.uid, session.gid).pipe(
      Effect.tapError(() => detach(attachment).pipe(Effect.ignore))
    )
    yield* writeSession(dir, { ...session, attachment, mountpoint })
  }).pipe(Effect.mapError((e) => failWith(EXIT.systemError, `Login impossible: ${e.message}`)))

/** Whatever an earlier session of this login left here (a crash mid-stage): unmounted and detached. */
const clearLeftovers = (ctx: PamContext, session: PamSession) =>
  Effect.gen(function* () {
    if (session.mountpoint !== null) yield* unmountHome(session.mountpoint)
    if (session.attachment !== null) yield* detach(session.attachment)
    yield* removeSession(ctx.profile.state_dir, session.login)
  }).pipe(Effect.mapError((e) => failWith(EXIT.systemError, `Login impossible: a previous session of ${session.login} is still attached: ${e.message}`)))

const mountedSession = (session: PamSession | null): boolean =>
  session !== null && session.mountpoint !== null && session.attachment !== null && isMounted(session.mountpoint)

/** Presence, home, attach and mount: the account stage (and open_session's fallback). */
const login = (ctx: PamContext, account: UserAccount) =>
  Effect.gen(function* () {
    const dir = ctx.profile.state_dir
    const previous = yield* readSession(dir, account.login)
    if (mountedSession(previous)) return
    if (previous !== null) yield* clearLeftovers(ctx, previous)
    yield* ctx.say("Checking user…")
    yield* traced("presence", requestLogin(ctx, account.login))
    const session: PamSession = { ...account, hostname: ctx.hostname, grant: null, attachment: null, mountpoint: null }
    const work = Effect.gen(function* () {
      // From here the file makes presenced heartbeat this login: the lease holds during a long move.
      yield* writeSession(dir, session)
      yield* ctx.say("Requesting home (it may first be moved from another home server)…")
      const hfs = yield* traced("mdb", machineHfs(ctx))
      const grant = yield* traced("getHome", withProgress(ctx, getHome(ctx, account.login, hfs)))
      yield* writeSession(dir, { ...session, grant })
      yield* ctx.say(`Mounting home from hfs${hfs}…`)
      yield* traced("attach+mount", attachAndMount(ctx, { ...session, grant }))
    })
    yield* work.pipe(
      Effect.tapError(() => Effect.zipRight(removeSession(dir, account.login), logout(ctx, account.login).pipe(Effect.ignore)))
    )
  })

export const accountStage = login

export const openSessionStage = (ctx: PamContext, account: UserAccount) =>
  Effect.gen(function* () {
    const session = yield* readSession(ctx.profile.state_dir, account.login)
    if (mountedSession(session)) return
    if (session !== null && session.grant !== null && session.attachment === null) {
      // account granted but did not mount (it always does; kept for a stack without it)
      return yield* attachAndMount(ctx, { ...session, grant: session.grant })
    }
    return yield* login(ctx, account)
  })

// ---- close_session ---------------------------------------------------------------------------

const ownMountNs = (): string => fs.readlinkSync("/proc/self/ns/mnt")

/** Processes of `uid` in this mount namespace (the machine; a test site shares one kernel). */
const userProcesses = (uid: number): ReadonlyArray<number> => {
  const mine = ownMountNs()
  const pids: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, "utf8")
      const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status)
      if (uids === null || (Number(uids[1]) !== uid && Number(uids[2]) !== uid)) continue
      if (fs.readlinkSync(`/proc/${entry}/ns/mnt`) !== mine) continue
      pids.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/** SIGKILL every process of the user here, then waits (bounded) until they are gone. */
const killUserProcesses = (uid: number): Effect.Effect<void, string> =>
  Effect.promise(async () => {
    const end = Date.now() + 5_000
    for (;;) {
      const left = userProcesses(uid)
      if (left.length === 0) return null
      if (Date.now() > end) return `processes of uid ${uid} still alive: ${left.slice(0, 5).join(", ")}`
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  }).pipe(Effect.flatMap((problem) => (problem === null ? Effect.void : Effect.fail(problem))))

export const closeSessionStage = (ctx: PamContext, account: UserAccount) =>
  Effect.gen(function* () {
    const dir = ctx.profile.state_dir
    const session = yield* readSession(dir, account.login)
    const problems: Array<string> = []
    const step = <E extends { readonly message: string } | string>(effect: Effect.Effect<void, E>) =>
      Effect.catchAll(effect, (e) => Effect.sync(() => void problems.push(typeof e === "string" ? e : e.message)))
    yield* traced("kill", step(killUserProcesses(account.uid)))
    yield* traced("unmount", step(unmountHome(session?.mountpoint ?? mountpointOf(ctx, account.login))))
    if (session?.attachment) yield* traced("detach", step(detach(session.attachment)))
    // The file stays only while the home is still mounted here: the next close finishes the job.
    // It goes before the presence logout: presenced heartbeats every user holding a session
    // file, and a round between the logout and the removal logged the user back in (the
    // machine then stayed "busy" until the lease ended).
    const mountpoint = session?.mountpoint ?? null
    if (mountpoint === null || !isMounted(mountpoint)) yield* removeSession(dir, account.login)
    yield* traced("logout", step(logout(ctx, account.login)))
    if (problems.length > 0) return yield* failWith(EXIT.systemError, `Logout incomplete: ${problems.join("; ")}`)
  })
