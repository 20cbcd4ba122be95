import { describe, expect, it } from "vitest"
import { exportNameOf, makeHomeAccess, newSecret, type RejectReason } from "../../src/actors/hfs/access.js"

// The HFS listener's gate, as a pure function of (peer, name).

describe("home access gate", () => {
  const setup = () => {
    const rejected: Array<RejectReason> = []
    const access = makeHomeAccess((reason) => rejected.push(reason))
    const secret = newSecret()
    access.set({ login: "alice", generation: 7, secret, ip: "192.168.0.12", grantedAt: 0, hostname: "pasteur-r01p01" })
    return { access, rejected, secret }
  }

  it("admits the granted machine with the grant's name, as alice@7 for the export table", () => {
    const { access, rejected, secret } = setup()
    const name = exportNameOf({ login: "alice", generation: 7, secret })
    expect(name).toMatch(/^alice@7:[0-9a-f]{32}$/)
    expect(access.gate("192.168.0.12", name)).toEqual({ _tag: "Allow", wireName: "alice@7" })
    expect(access.gate("::ffff:192.168.0.12", name)).toEqual({ _tag: "Allow", wireName: "alice@7" })
    expect(rejected).toEqual([])
  })

  it("refuses, each with its reason counted: another machine, a stale generation, a wrong secret, no grant, malformed names", () => {
    const { access, rejected, secret } = setup()
    const cases: Array<[string, string, RejectReason]> = [
      ["192.168.0.13", exportNameOf({ login: "alice", generation: 7, secret }), "wrong_machine"],
      ["192.168.0.12", exportNameOf({ login: "alice", generation: 6, secret }), "stale_generation"],
      ["192.168.0.12", exportNameOf({ login: "alice", generation: 7, secret: newSecret() }), "bad_secret"],
      ["192.168.0.12", exportNameOf({ login: "bob", generation: 7, secret }), "no_grant"],
      ["192.168.0.12", "alice", "malformed"],
      ["192.168.0.12", "alice@7", "malformed"],
      ["192.168.0.12", `../alice@7:${secret}`, "malformed"],
      ["192.168.0.12", `alice@07:${secret}`, "malformed"],
      ["192.168.0.12", `alice@7:${secret.toUpperCase()}`, "malformed"]
    ]
    for (const [peer, name, reason] of cases) {
      const d = access.gate(peer, name)
      expect(d._tag, `${peer} ${name}`).toBe("Refuse")
    }
    expect(rejected).toEqual(cases.map(([, , r]) => r))
  })

  it("a new grant retires the previous one at once", () => {
    const { access, secret } = setup()
    const next = newSecret()
    access.set({ login: "alice", generation: 8, secret: next, ip: "192.168.0.20", grantedAt: 0, hostname: "alt-r01p01" })
    expect(access.gate("192.168.0.12", exportNameOf({ login: "alice", generation: 7, secret }))._tag).toBe("Refuse")
    expect(access.gate("192.168.0.12", exportNameOf({ login: "alice", generation: 8, secret: next }))._tag).toBe("Refuse")
    expect(access.gate("192.168.0.20", exportNameOf({ login: "alice", generation: 8, secret: next }))._tag).toBe("Allow")
  })
})
