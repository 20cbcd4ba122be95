import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { running } from "../../../src/runtime/process-alive.js"
import { createTestDatabase } from "../../support/pg.js"
import { skipUnlessRoot } from "../../support/root.js"
import { makeSite, powerOff, type Site, waitUntil } from "./site.js"

// The login path end to end on a site in network namespaces (site.ts): real PAM (pamtester,
// pam_unix on the machine's synced /etc/shadow, pam_exec → prolo-pam), real presence and HFS
// nodes on a real PostgreSQL, real NBD (nbdfuse + loop) and ext4. pas-a and pas-c are served
// by hfs0, pas-b by hfs1. Presence leases last 3 s here (heartbeats every 0.6 s).

const skip = skipUnlessRoot("the login site needs network namespaces, mounts and loop devices")
const LEASE_SECONDS = 3

let site: Site

const state = async (machine: string, login: string) => {
  const r = await site.inMachine(machine, ["cat", `/run/prolo-pam/${login}`])
  return r.code === 0 ? (JSON.parse(r.stdout) as { grant: { host: string; port: number; export: string }; attachment: { loop: string; pid: number } }) : null
}

const asUser = (machine: string, login: string, script: string) =>
  site.inMachine(machine, ["setpriv", `--reuid=${login}`, `--regid=user`, "--init-groups", "sh", "-c", script])

/** Nothing of `login`'s session is left on `machine`: no mount, no session file, no nbdfuse. */
const expectNothingAttached = async (machine: string, login: string, loop?: string, fusePid?: number) => {
  expect(await site.homeMounts(machine)).toEqual([])
  expect(await state(machine, login)).toBeNull()
  if (loop !== undefined) expect((await site.inMachine(machine, ["losetup", loop])).code).not.toBe(0)
  if (fusePid !== undefined) expect(running(fusePid)).toBe(false)
}

describe.skipIf(skip)("site: prolo-pam under real PAM, homes over NBD, in network namespaces", () => {
  beforeAll(async () => {
    site = await makeSite({
      machines: [
        { name: "pas-a", hfs: 0 },
        { name: "pas-b", hfs: 1 },
        { name: "pas-c", hfs: 0 }
      ],
      users: ["Ada Lovelace", "Bob Kahn", "Cyd Charisse", "Dan Bricklin"],
      leaseSeconds: LEASE_SECONDS,
      database: () => Effect.runPromise(createTestDatabase)
    })
  }, 180_000)
  afterAll(async () => {
    await site?.close()
  }, 60_000)

  it("(1) first login on pas-a: home created from the skeleton, mounted, written; logout leaves nothing attached", async () => {
    const login = site.logins[0]!
    const r = await site.pam("pas-a", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0)
    expect(r.stdout).toContain("Checking user…")
    expect(r.stdout).toContain("Mounting home from hfs0…")
    expect(await site.mountAt("pas-a", `/home/${login}`)).toMatch(/^\/dev\/loop\d+ ext4$/)
    const s = (await state("pas-a", login))!
    expect(s.grant.export).toMatch(new RegExp(`^${login}@1:[0-9a-f]{32}$`))
    expect((await asUser("pas-a", login, `cat /home/${login}/.bashrc >/dev/null && echo hello > /home/${login}/notes.txt && stat -c %U /home/${login}/notes.txt`)).stdout.trim()).toBe(login)

    const out = await site.pam("pas-a", login, ["close_session"])
    expect(out.code, `${out.stdout}${out.stderr}`).toBe(0)
    await expectNothingAttached("pas-a", login, s.attachment.loop, s.attachment.pid)

    // the file is in the home: a second login (same machine, same HFS) finds it
    const again = await site.pam("pas-a", login, ["acct_mgmt", "open_session"])
    expect(again.code, again.stdout).toBe(0)
    expect((await site.inMachine("pas-a", ["cat", `/home/${login}/notes.txt`])).stdout).toBe("hello\n")
    expect((await site.pam("pas-a", login, ["close_session"])).code).toBe(0)
    await expectNothingAttached("pas-a", login)
  }, 120_000)

  it("(3) logged in on pas-b: a login on pas-a is refused with the original's text; pas-a attaching the export by hand is refused by the HFS", async () => {
    const login = site.logins[1]!
    const onB = await site.pam("pas-b", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(onB.code, `${onB.stdout}${onB.stderr}`).toBe(0)
    expect(onB.stdout).toContain("Mounting home from hfs1…")
    const grant = (await state("pas-b", login))!.grant

    const onA = await site.pam("pas-a", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(onA.code).not.toBe(0)
    expect(onA.stdout).toContain(`Login forbidden: ${login} is already logged somewhere else`)
    expect(onA.stdout.split("\n").filter((l) => l.startsWith("Login"))).toHaveLength(1)
    expect(await site.homeMounts("pas-a")).toEqual([])
    expect(await state("pas-a", login)).toBeNull()

    // the export name with its secret, used from pas-a's address: the HFS's gate refuses it
    const byHand = await site.inMachine("pas-a", ["nbdinfo", "--size", `nbd://${grant.host}:${grant.port}/${encodeURIComponent(grant.export)}`])
    expect(byHand.code).not.toBe(0)
    // while pas-b itself still reads its home
    expect((await site.inMachine("pas-b", ["ls", `/home/${login}/.bashrc`])).code).toBe(0)

    expect((await site.pam("pas-b", login, ["close_session"])).code).toBe(0)
    await expectNothingAttached("pas-b", login)
  }, 120_000)

  it("(4) pas-c loses power: after the lease the login on pas-a succeeds with the data, and pas-c's grant is fenced", async () => {
    const login = site.logins[2]!
    const onC = await site.pam("pas-c", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(onC.code, `${onC.stdout}${onC.stderr}`).toBe(0)
    expect((await asUser("pas-c", login, `echo before-crash > /home/${login}/work.txt && sync -f /home/${login}/work.txt`)).code).toBe(0)
    const old = (await state("pas-c", login))!.grant

    await powerOff(site, "pas-c")
    // refused while the lease runs, accepted once it ended (no heartbeat from pas-c any more)
    let refusals = 0
    let last = ""
    await waitUntil(
      "the login on pas-a after pas-c's lease",
      async () => {
        const r = await site.pam("pas-a", login, ["authenticate", "acct_mgmt", "open_session"])
        last = `${r.stdout}${r.stderr}`
        if (r.code === 0) return true
        expect(r.stdout).toContain(`Login forbidden: ${login} is already logged somewhere else`)
        refusals++
        return false
      },
      (LEASE_SECONDS + 20) * 1000
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${last}`)
    })
    expect(refusals).toBeGreaterThanOrEqual(0)
    expect((await site.inMachine("pas-a", ["cat", `/home/${login}/work.txt`])).stdout).toBe("before-crash\n")
    const now = (await state("pas-a", login))!.grant
    expect(now.export).not.toBe(old.export)

    // pas-c's network is back (its namespace is still there): its old export name gets nowhere
    const stale = await site.inNs(site.machine("pas-c").ns, ["nbdinfo", "--size", `nbd://${old.host}:${old.port}/${encodeURIComponent(old.export)}`])
    expect(stale.code).not.toBe(0)

    expect((await site.pam("pas-a", login, ["close_session"])).code).toBe(0)
    await expectNothingAttached("pas-a", login)
  }, 120_000)

  it("a home server that does not answer: one line naming it, nothing mounted, presence released at once", async () => {
    const login = site.logins[3]!
    const rhfs1 = site.nodes.get("rhfs1")!
    rhfs1.child.kill("SIGKILL")
    await rhfs1.exited
    const r = await site.pam("pas-b", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(r.code).not.toBe(0)
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("Login"))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Login impossible: home server hfs1 unreachable \(hfs1:20100\): /)
    expect(await site.homeMounts("pas-b")).toEqual([])
    expect(await state("pas-b", login)).toBeNull()
    // prolo-pam logged out of presence: pas-a (hfs0) takes the login now, no lease to wait for
    const onA = await site.pam("pas-a", login, ["authenticate", "acct_mgmt", "open_session"])
    expect(onA.code, onA.stdout).toBe(0)
    expect((await site.pam("pas-a", login, ["close_session"])).code).toBe(0)
    await expectNothingAttached("pas-a", login)
  }, 120_000)
})
