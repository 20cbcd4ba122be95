import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { applySnapshot, applyUpdates, type State } from "../../src/actors/sync/apply-updates.js"
import { parseUpdates } from "../../src/actors/sync/parse-batch.js"

// The original's apply_updates semantics (presence.md §1).
describe("applyUpdates", () => {
  it("reports created, updated, deleted; replaces records wholesale", () => {
    const state: State = new Map()
    const m1 = applyUpdates("login", state, [
      { type: "update", data: { login: "a", hostname: "h1", extra: 1 } },
      { type: "update", data: { login: "b", hostname: "h2" } }
    ])
    expect([...m1]).toEqual([["a", "created"], ["b", "created"]])
    const m2 = applyUpdates("login", state, [
      { type: "update", data: { login: "a", hostname: "h3" } },
      { type: "delete", data: { login: "b" } },
      { type: "delete", data: { login: "zz" } }
    ])
    expect([...m2]).toEqual([["a", "updated"], ["b", "deleted"]])
    expect(state.get("a")).toEqual({ login: "a", hostname: "h3" }) // no field merging
    expect(state.has("b")).toBe(false)
  })

  it("with watch reports updated only when a watched field changed; creations and deletions always", () => {
    const state: State = new Map([["m1", { mac: "m1", hostname: "x", room: "pasteur" }]])
    const quiet = applyUpdates("mac", state, [{ type: "update", data: { mac: "m1", hostname: "x", room: "alt" } }], ["hostname"])
    expect(quiet.size).toBe(0)
    expect(state.get("m1")?.["room"]).toBe("alt")
    const loud = applyUpdates("mac", state, [
      { type: "update", data: { mac: "m1", hostname: "y", room: "alt" } },
      { type: "update", data: { mac: "m2", hostname: "z" } },
      { type: "delete", data: { mac: "m1" } }
    ], ["hostname"])
    expect([...loud]).toEqual([["m1", "deleted"], ["m2", "created"]]) // later status overwrites
  })

  it("compares watched fields structurally", () => {
    const state: State = new Map([["a", { login: "a", groups: ["x", "y"], o: { k: 1 } }]])
    expect(applyUpdates("login", state, [{ type: "update", data: { login: "a", groups: ["x", "y"], o: { k: 1 } } }], ["groups", "o"]).size).toBe(0)
    expect([...applyUpdates("login", state, [{ type: "update", data: { login: "a", groups: ["x"], o: { k: 1 } } }], ["groups"])]).toEqual([["a", "updated"]])
  })

  it("a snapshot over a state reports only the differences", () => {
    const state: State = new Map([
      ["a", { login: "a", v: 1 }],
      ["b", { login: "b", v: 1 }],
      ["c", { login: "c", v: 1 }]
    ])
    const m = applySnapshot("login", state, [{ login: "a", v: 1 }, { login: "b", v: 2 }, { login: "d", v: 1 }])
    expect(Object.fromEntries(m)).toEqual({ b: "updated", c: "deleted", d: "created" })
    expect([...state.keys()].sort()).toEqual(["a", "b", "d"])
  })
})

describe("parseUpdates", () => {
  const bad = (text: string) => {
    const r = parseUpdates("mdb", "mac", text)
    if (Either.isRight(r)) throw new Error("accepted")
    return r.left
  }
  it("accepts the original's message and keeps only type and data", () => {
    const r = parseUpdates("mdb", "mac", '[{"type": "update", "data": {"mac": "aa"}, "junk": 1}, {"type":"delete","data":{"mac":"bb"}}]')
    expect(r).toEqual(Either.right([{ type: "update", data: { mac: "aa" } }, { type: "delete", data: { mac: "bb" } }]))
  })
  it("refuses malformed messages with the offending index", () => {
    expect(bad("{").reason).toMatch(/^not JSON/)
    expect(bad('{"type":"update"}').index).toBe(-1)
    expect(bad("[]").reason).toMatch(/empty/)
    expect(bad('[{"type":"update","data":{"mac":"a"}},{"type":"upsert","data":{"mac":"b"}}]')).toMatchObject({ index: 1, reason: expect.stringMatching(/type must be/) })
    expect(bad('[{"type":"update","data":{"hostname":"x"}}]')).toMatchObject({ index: 0, reason: expect.stringMatching(/data.mac/) })
    expect(bad('[{"type":"update","data":[1]}]').reason).toMatch(/JSON object/)
    expect(bad('[{"type":"update","data":{"mac":"a","tags":["x","y\\u0000"]}}]').reason).toBe(
      "data.tags[1] contains a NUL character (\\u0000), which cannot be stored"
    )
    expect(bad('[{"type":"update","data":{"mac":"a","o":{"k\\u0000":1}}}]').reason).toMatch(/^data.o \(a key\) contains a NUL/)
  })
})
