import { describe, expect, it } from "vitest"
import { makeSessionRevocations } from "../../src/actors/web/session-revocations.js"

describe("session revocations", () => {
  it("hold a logout until the session would have expired, then forget it", () => {
    const r = makeSessionRevocations()
    r.revoke("a", 1_000, 0)
    r.revoke("b", 5_000, 0)
    expect(r.isRevoked("a")).toBe(true)
    expect(r.isRevoked("c")).toBe(false)
    // a later logout prunes what has expired (the cookie's own expiry refuses it from then on)
    r.revoke("c", 9_000, 2_000)
    expect(r.isRevoked("a")).toBe(false)
    expect([r.isRevoked("b"), r.isRevoked("c"), r.size()]).toEqual([true, true, 2])
    // an already expired session adds nothing
    r.revoke("d", 1_000, 2_000)
    expect(r.isRevoked("d")).toBe(false)
  })
})
