import { describe, expect, it } from "vitest"
import { Either } from "effect"
import { describeRoles, parseRoles, roleNames, roles, subsystemsOf } from "../src/roles.js"

describe("role map", () => {
  it("`all` runs every subsystem of every role but the login helper, each once", () => {
    const everyName = new Set(roleNames.filter((r) => r !== "login").flatMap((r) => roles[r].subsystems.map((s) => s.name)))
    const allNames = roles.all.subsystems.map((s) => s.name)
    expect(new Set(allNames)).toEqual(everyName)
    expect(allNames).toHaveLength(everyName.size)
  })

  it("a combination of roles starts a shared subsystem once", () => {
    const names = subsystemsOf(["gw", "rhfs", "user", "all"]).map((s) => s.name)
    expect(names).toHaveLength(new Set(names).size)
  })

  it("--help describes every role", () => {
    expect(describeRoles().map(([name]) => name)).toEqual([...roleNames, "all"])
  })

  it("parses comma lists and repeated options, dropping duplicates", () => {
    expect(parseRoles(["gw,web", "user", "gw"])).toEqual(Either.right(["gw", "web", "user"]))
    expect(parseRoles([" rhfs , all "])).toEqual(Either.right(["rhfs", "all"]))
  })

  it("refuses an unknown or missing role with a message naming it", () => {
    const unknown = parseRoles(["gw,nope"])
    expect(Either.isLeft(unknown) && unknown.left.message).toBe(`--layer: unknown role "nope" (expected gw, rhfs, web, user, login, worker, all)`)
    const none = parseRoles([",", ""])
    expect(Either.isLeft(none) && none.left.message).toContain("no role given")
    const proto = parseRoles(["constructor"])
    expect(Either.isLeft(proto)).toBe(true)
  })
})
