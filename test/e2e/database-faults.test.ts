import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, Schedule } from "effect"
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { MDB_SERVICE, MdbRpcs } from "../../src/protocols/mdb.js"
import { PRESENCE_SERVICE, PresenceRpcs } from "../../src/protocols/presence.js"
import { UDB_SERVICE, UdbRpcs } from "../../src/protocols/udb.js"
import { makeRpcClient } from "../../src/runtime/cli-client.js"
import { startEmbeddedPostgres } from "../../src/store/embedded-postgres.js"
import { DEV_SECRETS, hostOf, macOf } from "../presence/support/spawn-node.js"
import { childrenOf } from "../support/processes.js"
import { checkout, exitWithin, killAll, startNode } from "./node-process.js"

// Issue 17 item 6 on the real binary (`prolo-node --layer gw`):
// - the embedded PostgreSQL killed -9: the node used to stay up answering pong, with every
//   database call failing; now it ends with code 70 (its service manager restarts it) and the
//   next start recovers: pong, mdb queries, presence logins;
// - an external database that stops answering: /__ping says 503 naming the database, mdb
//   answers the typed MdbUnavailable (it was a protocol Defect), presence PresenceUnavailable;
//   both recover when it answers again.

const configDir = (root: string, database: string) => {
  const dir = path.join(root, "etc")
  mkdirSync(dir)
  const etc = path.join(checkout, "etc", "prologin")
  for (const name of readdirSync(etc)) if (name.endsWith(".yml")) copyFileSync(path.join(etc, name), path.join(dir, name))
  writeFileSync(path.join(dir, "node.yml"), `database:\n${database}`)
  return dir
}

const tempRoot = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-dbfaults-"))
    await fs.chmod(dir, 0o755) // the postgres OS user must reach db/ inside
    return dir
  }),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const gateway = (dir: string) =>
  Effect.acquireRelease(
    Effect.promise(() => startNode(["--layer", "gw", "--config", dir])),
    () => Effect.promise(killAll)
  )

const ping = (url: string) =>
  Effect.promise(async () => {
    const res = await fetch(`${url}/__ping`)
    return { status: res.status, body: await res.text() }
  })

/** One machine and one user, registered through mdb and udb; presence hears of them on the topics. */
const seed = (url: string) =>
  Effect.gen(function* () {
    const mdb = yield* makeRpcClient(MdbRpcs, { url, service: MDB_SERVICE, secret: Redacted.make(DEV_SECRETS.mdb) })
    const udb = yield* makeRpcClient(UdbRpcs, { url, service: UDB_SERVICE, secret: Redacted.make(DEV_SECRETS.udb) })
    yield* mdb.addMachine({ hostname: hostOf(0), mac: macOf(0), mtype: "user", room: "pasteur" })
    yield* mdb.addMachine({ hostname: hostOf(1), mac: macOf(1), mtype: "user", room: "pasteur" })
    yield* udb.createUser({ login: "user0", firstname: "User", lastname: "Zero", group: "user" })
    yield* udb.createUser({ login: "user1", firstname: "User", lastname: "One", group: "user" })
  })

const clients = (url: string) =>
  Effect.all({
    mdb: makeRpcClient(MdbRpcs, { url, service: MDB_SERVICE }),
    presence: makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret: Redacted.make(DEV_SECRETS.presence) })
  })

const untilOk = Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds"))

describe("the node's database dies or stalls", () => {
  it.live(
    "embedded PostgreSQL killed -9: the node ends with 70; the next start recovers and removes the dead socket directory",
    () =>
      Effect.gen(function* () {
        const root = yield* tempRoot
        const dataDir = path.join(root, "db")
        const dir = configDir(root, `  data_dir: ${JSON.stringify(dataDir)}\n`)
        const first = yield* gateway(dir)
        expect(yield* ping(first.url)).toEqual({ status: 200, body: "pong" })
        yield* seed(first.url)
        const a = yield* clients(first.url)
        yield* a.presence.RequestLogin({ login: "user0", hostname: hostOf(0) }).pipe(Effect.retry(untilOk))

        const postmaster = Number(readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n", 1)[0])
        const nodePid = first.node.child.pid!
        process.kill(postmaster, "SIGKILL")
        expect(yield* Effect.promise(() => exitWithin(first.node, 60_000))).toBe(70)
        expect(first.node.stderr).toContain(`embedded PostgreSQL (pid ${postmaster}, ${dataDir}) died (signal SIGKILL) while the node runs`)
        const leftovers = () => readdirSync(os.tmpdir()).filter((name) => name.startsWith(`prolo-pg-${nodePid}-`))
        expect(leftovers().length).toBe(1)

        // what systemd does: start it again
        const second = yield* gateway(dir)
        expect(leftovers()).toEqual([])
        expect(yield* ping(second.url)).toEqual({ status: 200, body: "pong" })
        const b = yield* clients(second.url)
        expect((yield* b.mdb.query({ filters: {} })).map((m) => m.hostname).sort()).toEqual([hostOf(0), hostOf(1)])
        // the lease survived in the database: user0 is still on host 0, user1 logs in on host 1
        const refused = yield* Effect.flip(b.presence.RequestLogin({ login: "user0", hostname: hostOf(1) }).pipe(Effect.retry({ schedule: untilOk, while: (e) => e._tag === "PresenceUnavailable" })))
        expect(refused).toMatchObject({ _tag: "LoginRefused", reason: "already_logged" })
        yield* b.presence.RequestLogin({ login: "user1", hostname: hostOf(1) })
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "an external database that stops answering: /__ping 503 naming it, typed unavailability, recovery when it answers again",
    () =>
      Effect.gen(function* () {
        const root = yield* tempRoot
        const pg = yield* startEmbeddedPostgres({ dataDir: path.join(root, "db"), settings: { fsync: "off" } })
        const dir = configDir(root, `  url: ${JSON.stringify(Redacted.value(pg.url("postgres")))}\n  query_timeout_seconds: 1\n`)
        const node = yield* gateway(dir)
        yield* seed(node.url)
        const c = yield* clients(node.url)
        yield* c.presence.RequestLogin({ login: "user0", hostname: hostOf(0) }).pipe(Effect.retry(untilOk))

        const pids = [pg.pid, ...(yield* Effect.promise(() => childrenOf(pg.pid)))]
        const signal = (sig: NodeJS.Signals) =>
          Effect.sync(() => {
            for (const pid of pids) {
              try {
                process.kill(pid, sig)
              } catch {
                // gone
              }
            }
          })
        yield* Effect.acquireRelease(signal("SIGSTOP"), () => signal("SIGCONT"))
        const degraded = yield* ping(node.url)
        expect(degraded.status).toBe(503)
        expect(degraded.body).toMatch(/^degraded\ndatabase: (.*timeout.*|no answer within 2s)\n$/i)
        expect(yield* Effect.flip(c.mdb.query({ filters: {} }))).toMatchObject({ _tag: "MdbUnavailable" })
        expect(yield* Effect.flip(c.presence.RequestLogin({ login: "user1", hostname: hostOf(1) }))).toMatchObject({ _tag: "PresenceUnavailable" })
        // a heartbeat of a held lease needs no database
        yield* c.presence.Heartbeat({ login: "user0", hostname: hostOf(0) })

        yield* signal("SIGCONT")
        yield* ping(node.url).pipe(
          Effect.filterOrFail((r) => r.status === 200, (r) => new Error(`still ${r.status}: ${r.body}`)),
          Effect.retry(untilOk)
        )
        expect((yield* c.mdb.query({ filters: {} }).pipe(Effect.retry(untilOk))).length).toBe(2)
        yield* c.presence.RequestLogin({ login: "user1", hostname: hostOf(1) }).pipe(Effect.retry(untilOk))
        rmSync(dir, { recursive: true, force: true })
      }).pipe(Effect.scoped),
    300_000
  )
})
