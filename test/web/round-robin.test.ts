import { describe, expect, it } from "vitest"
import { evaluate, rank, roundRobin } from "../../src/actors/web/concours/round-robin.js"

describe("tournament arithmetic", () => {
  it("round robin: every ordered tuple of distinct champions, per map and repeat", () => {
    expect(roundRobin([1, 2, 3], [7], 2, 1).map((m) => m.champions)).toEqual([[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]])
    expect(roundRobin([1, 2, 3], [7, 8], 2, 2)).toHaveLength(24)
    expect(roundRobin([1, 2], [], 2, 1)).toEqual([{ champions: [1, 2], map: undefined }, { champions: [2, 1], map: undefined }])
    expect(roundRobin([1, 2, 3], [], 3, 1)).toHaveLength(6)
  })

  it("wins: 2 to a sole top scorer, 1 to each tied one; cumulative sums; ranks share ex aequo", () => {
    const matches = [
      { players: [{ champion: 1, score: 10 }, { champion: 2, score: 5 }] },
      { players: [{ champion: 2, score: 7 }, { champion: 3, score: 7 }] },
      { players: [{ champion: 3, score: 1 }, { champion: 1, score: null }] }
    ]
    expect([...evaluate(matches, [1, 2, 3, 4], "wins")]).toEqual([[1, 2], [2, 1], [3, 3], [4, 0]])
    expect([...evaluate(matches, [1, 2, 3], "cumulative")]).toEqual([[1, 10], [2, 12], [3, 8]])
    expect(rank([{ c: 1, score: 2 }, { c: 2, score: 3 }, { c: 3, score: 2 }, { c: 4, score: 0 }]).map((r) => [r.c, r.rank])).toEqual([[2, 1], [1, 2], [3, 2], [4, 4]])
  })
})
