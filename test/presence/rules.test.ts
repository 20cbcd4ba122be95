import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  admit,
  assign,
  dueLeases,
  emptyTable,
  type Lease,
  nextExpiry,
  occupancy,
  release,
  validateAssociation
} from "../../src/actors/presence/rules.js"

const lease = (login: string, hostname: string, expiresAt = 10): Lease => ({ login, hostname, expiresAt, since: 0, refreshedAt: 0 })

describe("presence rules (pure)", () => {
  it("the two maps always name each other back: a move frees the previous host", () => {
    const t = emptyTable()
    assign(t, lease("alice", "h1"))
    assign(t, lease("alice", "h2"))
    expect([...t.byLogin.keys()]).toEqual(["alice"])
    expect([...t.byHost]).toEqual([["h2", "alice"]])
    assign(t, lease("bob", "h1"))
    release(t, ["alice", "nobody"])
    expect([...t.byHost]).toEqual([["h1", "bob"]])
    expect(occupancy(t, "bob", "h1")).toBe("here")
    expect(occupancy(t, "bob", "h3")).toBe("elsewhere")
    expect(occupancy(t, "carol", "h1")).toBe("busy")
    expect(occupancy(t, "carol", "h3")).toBe("free")
  })

  it("expiry: due at expiresAt exactly, not before; the next expiry is the earliest", () => {
    const t = emptyTable()
    assign(t, lease("a", "h1", 100))
    assign(t, lease("b", "h2", 50))
    expect(dueLeases(t, 49)).toEqual([])
    expect(dueLeases(t, 50).map((l) => l.login)).toEqual(["b"])
    expect(nextExpiry(t)).toBe(50)
    expect(nextExpiry(emptyTable())).toBeUndefined()
  })

  it("admission: registered machine, registered user, contestants only on contestant machines", () => {
    const refusal = (r: Either.Either<void, { readonly reason: string; readonly message: string }>) =>
      Either.isLeft(r) ? [r.left.reason, r.left.message] : "accepted"
    expect(refusal(admit("a", "h", undefined, { group: "user" }))).toEqual(["machine_not_registered", "h is not a registered machine"])
    expect(refusal(admit("a", "h", { mtype: "user" }, undefined))).toEqual(["user_not_registered", "a is not a registered user"])
    for (const mtype of ["orga", "service", "cluster"]) {
      expect(refusal(admit("a", "h", { mtype }, { group: "user" }))).toEqual([
        "user_not_allowed",
        "a is not a kind of user that is allowed to log on h"
      ])
      expect(refusal(admit("o", "h", { mtype }, { group: "orga" }))).toBe("accepted")
      expect(refusal(admit("r", "h", { mtype }, { group: "root" }))).toBe("accepted")
    }
    expect(refusal(admit("a", "h", { mtype: "user" }, { group: "user" }))).toBe("accepted")
  })

  it("names: precise errors for what cannot be a login or hostname", () => {
    expect(Either.isRight(validateAssociation("alice_2", "pas-r01p01"))).toBe(true)
    expect(Either.isRight(validateAssociation("a", "h.example"))).toBe(true)
    const bad = validateAssociation("alice", "x".repeat(64))
    expect(Either.isLeft(bad) && bad.left.field).toBe("hostname")
    const ctl = validateAssociation("al\u0000ice", "h")
    expect(Either.isLeft(ctl) && ctl.left.message).toContain('invalid login "al\\u0000ice"')
  })
})
