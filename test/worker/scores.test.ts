import { describe, expect, it } from "vitest"
import { parseScores } from "../../src/actors/worker/match.js"

// The server's stdout as stechec2 prints it: log lines, then YAML documents from the first
// `---`; only mappings with player, score and nb_timeout count (the original kept mappings).

describe("match scores from the server's stdout", () => {
  it("reads the documents after the first ---, skipping lines before and documents that are not results", () => {
    const out = "starting\nturn 1\n---\nplayer: 12\nscore: 42\nnb_timeout: 0\n---\nplayer: 13\nscore: -3\nnb_timeout: 2\n---\njust a string\n---\n- a list\n"
    expect(parseScores(out)).toEqual([
      { player: "12", score: 42, nb_timeout: 0 },
      { player: "13", score: -3, nb_timeout: 2 }
    ])
  })

  it("finds nothing without a --- or with incomplete documents", () => {
    expect(parseScores("player: 1\nscore: 2\nnb_timeout: 0\n")).toEqual([])
    expect(parseScores("---\nplayer: 1\nscore: many\nnb_timeout: 0\n")).toEqual([])
    // A broken document (a server bug) is skipped, the others still count.
    expect(parseScores("---\nplayer: [1\nscore: 2\n---\nplayer: 2\nscore: 5\nnb_timeout: 0\n")).toEqual([{ player: "2", score: 5, nb_timeout: 0 }])
  })
})
