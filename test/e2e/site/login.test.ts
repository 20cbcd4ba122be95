import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { running } from "../../../src/runtime/process-alive.js"
import { createTestDatabase } from "../../support/pg.js"
import { skipUnlessRoot } from "../../support/root.js"
import { bootMachine, makeSite, powerOff, rebootMachine, type Site, waitUntil } from "./site.js"

// The login path end to end on a site in network namespaces (site.ts): real PAM (pamtester,
// pam_unix on the machine's synced /etc/shadow, pam_exec → prolo-pam), real presence and HFS
// nodes on a real PostgreSQL, real NBD (nbdfuse + loop) and ext4. pas-a is served by hfs0,
// pas-b by hfs1: a user going from one to the other moves their home. Presence leases last
// 3 s here (heartbeats every 0.6 s). The scenarios run in order on one site.

const skip = skipUnlessRoot("the login site needs network namespaces, mounts and loop devices")
const LEASE_SECONDS = 3

let site: Site

interface SessionFile {
  readonly grant: { readonly host: string; readonly port: number; readonly export: string }
  readonly attachment: { readonly loop: string; readonly pid: number }
}

const state = async (machine: string, login: string): Promise<SessionFile | null> => {
  const r = await site.inMachine(machine, ["cat", `/run/prolo-pam/${login}`])
  return r.code === 0 ? (JSON.parse(r.stdout) as SessionFile) : null
}

const asUser = (machine: string, login: string, script: string) =>
  site.inMachine(machine, ["setpriv", `--reuid=${login}`, "--regid=user", "--init-groups", "sh", "-c", script])

const login = async (machine: string, user: string) => {
  const r = await site.pam(machine, user, ["authenticate", "acct_mgmt", "open_session"])
  expect(r.code, `login of ${user} on ${machine}: ${r.stdout}${r.stderr}`).toBe(0)
  return r
}

const logout = async (machine: string, user: string) => {
  const r = await site.pam(machine, user, ["close_session"])
  expect(r.code, `logout of ${user} on ${machine}: ${r.stdout}`).toBe(0)
  await expectNothingAttached(machine, user)
}

/** Nothing of `user`'s session is left on `machine`: no mount, no session file, no loop, no nbdfuse. */
const expectNothingAttached = async (machine: string, user: string, session?: SessionFile | null) => {
  expect(await site.homeMounts(machine)).toEqual([])
  expect(await state(machine, user)).toBeNull()
  if (session) {
    expect((await site.inMachine(machine, ["losetup", session.attachment.loop])).code).not.toBe(0)
    expect(running(session.attachment.pid)).toBe(false)
  }
}

const exportUri = (grant: SessionFile["grant"]) => `nbd://${grant.host}:${grant.port}/${encodeURIComponent(grant.export)}`

const imageOf = (rhfs: string, hfs: number, user: string) => path.join(site.root, `export-${rhfs}`, `hfs${hfs}`, `${user}.nbd`)

/** e2fsck -fn of a home image not attached anywhere: exit 0 = clean. */
const fsck = async (image: string) => {
  const { execFile } = await import("node:child_process")
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile("e2fsck", ["-fn", image], (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code), out: `${stdout}${stderr}` }))
  )
}

const locationOf = async (user: string) => {
  const db = new pg.Client({ connectionString: Redacted.value(site.databaseUrl!) })
  await db.connect()
  try {
    const r = await db.query<{ hfs: number; state: string }>("SELECT hfs, state FROM hfs_location WHERE login = $1", [user])
    return r.rows[0]
  } finally {
    await db.end()
  }
}

describe.skipIf(skip)("site: prolo-pam under real PAM, homes over NBD, in network namespaces", () => {
  beforeAll(async () => {
    site = await makeSite({
      machines: [
        { name: "pas-a", hfs: 0 },
        { name: "pas-b", hfs: 1 }
      ],
      users: ["Ada Lovelace", "Bob Kahn", "Cyd Charisse", "Dan Bricklin", "Eve Cooper"],
      leaseSeconds: LEASE_SECONDS,
      database: () => Effect.runPromise(createTestDatabase)
    })
  }, 180_000)
  afterAll(async () => {
    await site?.close()
  }, 60_000)

  it("(1) first login on pas-a: home created from the skeleton, mounted, written; logout leaves nothing attached", async () => {
    const user = site.logins[0]!
    const r = await login("pas-a", user)
    expect(r.stdout).toContain("Checking user…")
    expect(r.stdout).toContain("Mounting home from hfs0…")
    expect(await site.mountAt("pas-a", `/home/${user}`)).toMatch(/^\/dev\/loop\d+ ext4$/)
    const s = (await state("pas-a", user))!
    expect(s.grant.export).toMatch(new RegExp(`^${user}@1:[0-9a-f]{32}$`))
    const written = await asUser("pas-a", user, `cat /home/${user}/.bashrc >/dev/null && echo hello > /home/${user}/notes.txt && stat -c %U /home/${user}/notes.txt`)
    expect(written.stdout.trim()).toBe(user)
    await logout("pas-a", user)
    await expectNothingAttached("pas-a", user, s)

    // the file is in the home: a second login on the same machine finds it
    await login("pas-a", user)
    expect((await site.inMachine("pas-a", ["cat", `/home/${user}/notes.txt`])).stdout).toBe("hello\n")
    await logout("pas-a", user)

    // every stage went through pas-a's login helper (its metrics), none in process
    const metrics = (await site.inMachine("pas-a", ["curl", "-sf", `http://${site.machine("pas-a").ip}:20000/metrics`])).stdout
    const count = (stage: string) => Number(new RegExp(`^prolo_login_stages_total\\{stage="${stage}",status="0"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0)
    expect([count("account"), count("open_session"), count("close_session")]).toEqual([2, 2, 2])
  }, 120_000)

  it("(2) login on pas-b (hfs1): the home moves from hfs0, the file is there, e2fsck finds it clean", async () => {
    const user = site.logins[0]!
    // hfs0 keeps a grant live for live_grant_seconds (1 s here) after its getHome, logged out or
    // not: a login on pas-b right after is told the home is still in use on pas-a, then goes through
    let r = { code: -1, stdout: "", stderr: "" }
    await waitUntil("the login on pas-b", async () => {
      r = await site.pam("pas-b", user, ["authenticate", "acct_mgmt", "open_session"])
      if (r.code !== 0) expect(r.stdout).toContain("Login impossible: your home is still in use on pas-a")
      return r.code === 0
    }, 20_000)
    expect(r.stdout).toContain("Mounting home from hfs1…")
    expect((await site.inMachine("pas-b", ["cat", `/home/${user}/notes.txt`])).stdout).toBe("hello\n")
    expect(await locationOf(user)).toEqual({ hfs: 1, state: "ready" })
    await logout("pas-b", user)
    const check = await fsck(imageOf("rhfs1", 1, user))
    expect(check.code, check.out).toBe(0)
    await expect(fs.access(imageOf("rhfs0", 0, user))).rejects.toThrow() // hfs0 retired its copy
  }, 120_000)

  it("(3) logged in on pas-b: a login on pas-a is refused with the original's text; pas-a attaching the export by hand is refused by the HFS", async () => {
    const user = site.logins[1]!
    const onB = await login("pas-b", user)
    expect(onB.stdout).toContain("Mounting home from hfs1…")
    const grant = (await state("pas-b", user))!.grant

    const onA = await site.pam("pas-a", user, ["authenticate", "acct_mgmt", "open_session"])
    expect(onA.code).not.toBe(0)
    expect(onA.stdout).toContain(`Login forbidden: ${user} is already logged somewhere else`)
    expect(onA.stdout.split("\n").filter((l) => l.startsWith("Login"))).toHaveLength(1)
    expect(await site.homeMounts("pas-a")).toEqual([])
    expect(await state("pas-a", user)).toBeNull()

    // the export name with its secret, used from pas-a's address: the HFS's gate refuses it
    const byHand = await site.inMachine("pas-a", ["nbdinfo", "--size", exportUri(grant)])
    expect(byHand.code).not.toBe(0)
    // while pas-b itself still reads its home
    expect((await site.inMachine("pas-b", ["ls", `/home/${user}/.bashrc`])).code).toBe(0)
    await logout("pas-b", user)
  }, 120_000)

  it("(4) pas-b loses power: after the lease the login on pas-a succeeds with the data, and pas-b, back, is fenced", async () => {
    const user = site.logins[2]!
    await login("pas-b", user)
    expect((await asUser("pas-b", user, `echo before-crash > /home/${user}/work.txt && sync -f /home/${user}/work.txt`)).code).toBe(0)
    const old = (await state("pas-b", user))!.grant

    await powerOff(site, "pas-b")
    // refused while the lease runs (no heartbeat from pas-b any more), accepted once it ended
    let last = ""
    await waitUntil(
      "the login on pas-a after pas-b's lease",
      async () => {
        const r = await site.pam("pas-a", user, ["authenticate", "acct_mgmt", "open_session"])
        last = `${r.stdout}${r.stderr}`
        if (r.code === 0) return true
        expect(r.stdout).toMatch(new RegExp(`Login forbidden: ${user} is already logged somewhere else|Login impossible: your home is still in use`))
        return false
      },
      (LEASE_SECONDS + 20) * 1000
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${last}`)
    })
    expect((await site.inMachine("pas-a", ["cat", `/home/${user}/work.txt`])).stdout).toBe("before-crash\n")
    expect(await locationOf(user)).toEqual({ hfs: 0, state: "ready" })

    // pas-b boots again: its old export name gets nowhere, and presence keeps the user on pas-a
    await rebootMachine(site, "pas-b")
    expect((await site.inMachine("pas-b", ["nbdinfo", "--size", exportUri(old)])).code).not.toBe(0)
    const again = await site.pam("pas-b", user, ["authenticate", "acct_mgmt", "open_session"])
    expect(again.stdout).toContain(`Login forbidden: ${user} is already logged somewhere else`)
    await logout("pas-a", user)
  }, 120_000)

  it("(5) rhfs1 dies in the middle of moving a home: one line on pas-b, and the next login gets the home intact", async () => {
    const user = site.logins[4]!
    await login("pas-a", user)
    // enough data that the move takes a while (4 MiB windows, each checked)
    const made = await asUser("pas-a", user, `head -c 96M /dev/urandom > /home/${user}/big && sync -f /home/${user}/big && sha256sum /home/${user}/big`)
    expect(made.code, made.stdout).toBe(0)
    const digest = made.stdout.split(" ")[0]
    await logout("pas-a", user)

    const incoming = path.join(site.root, "export-rhfs1", "hfs1", ".incoming")
    const onB = site.pam("pas-b", user, ["authenticate", "acct_mgmt", "open_session"])
    await waitUntil("hfs1 receiving the home", async () => (await fs.readdir(incoming).catch(() => [])).length > 0, 60_000)
    const rhfs1 = site.nodes.get("rhfs1")!
    rhfs1.child.kill("SIGKILL")
    await rhfs1.exited
    const failed = await onB
    expect(failed.code).not.toBe(0)
    const lines = failed.stdout.split("\n").filter((l) => l.startsWith("Login"))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Login impossible: home server hfs1 /)
    expect(await site.homeMounts("pas-b")).toEqual([])
    expect(await state("pas-b", user)).toBeNull()
    expect(await locationOf(user)).toMatchObject({ hfs: 0 }) // the source stayed the home

    await login("pas-a", user)
    expect((await site.inMachine("pas-a", ["sha256sum", `/home/${user}/big`])).stdout.split(" ")[0]).toBe(digest)
    await logout("pas-a", user)
    const check = await fsck(imageOf("rhfs0", 0, user))
    expect(check.code, check.out).toBe(0)
  }, 180_000)

  it("a home server that does not answer: one line naming it, nothing mounted, presence released at once", async () => {
    const user = site.logins[3]!
    const rhfs1 = site.nodes.get("rhfs1")!
    if (rhfs1.child.exitCode === null && rhfs1.child.signalCode === null) {
      rhfs1.child.kill("SIGKILL")
      await rhfs1.exited
    }
    const r = await site.pam("pas-b", user, ["authenticate", "acct_mgmt", "open_session"])
    expect(r.code).not.toBe(0)
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("Login"))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Login impossible: home server hfs1 unreachable \(hfs1:20100\): /)
    expect(await site.homeMounts("pas-b")).toEqual([])
    expect(await state("pas-b", user)).toBeNull()
    // prolo-pam logged out of presence: pas-a (hfs0) takes the login now, no lease to wait for
    await login("pas-a", user)
    await logout("pas-a", user)
  }, 120_000)

  it("a misspelt key in pam.yml: the login helper does not start (exit 2, file and key named); prolo-pam says it in one line, nothing asked, nothing mounted", async () => {
    const user = site.logins[3]!
    const file = path.join(site.machine("pas-a").config, "pam.yml")
    const good = await fs.readFile(file, "utf8")
    const key = new RegExp(`${file.replaceAll(".", "\\.")}: mdb_ulr: `)
    await fs.writeFile(file, good.replace("mdb_url:", "mdb_ulr:"))
    const running = site.machine("pas-a").node!
    running.child.kill("SIGTERM")
    await running.exited
    try {
      // The helper reads pam.yml once, at its start: its node refuses to start, and says why.
      await expect(bootMachine(site, "pas-a")).rejects.toThrow(key)
      expect(await site.nodes.get("pas-a")!.exited).toBe(2)
      // No helper answers: bin/prolo-pam runs the stage in process, which reads pam.yml itself.
      const r = await site.pam("pas-a", user, ["authenticate", "acct_mgmt", "open_session"])
      expect(r.code).not.toBe(0)
      expect(r.stdout.split("\n").filter((l) => l.startsWith("Login"))).toEqual([
        expect.stringMatching(new RegExp(`^Login impossible: configuration: ${key.source}`))
      ])
      expect(r.stdout).not.toContain("Checking user")
      expect(await site.homeMounts("pas-a")).toEqual([])
    } finally {
      await fs.writeFile(file, good)
      await bootMachine(site, "pas-a")
    }
  }, 60_000)
})
