import { spawnSync } from "node:child_process"
import { afterEach, describe, expect, it } from "vitest"
import { freePort } from "../support/processes.js"
import { checkout, exitWithin, killAll, spawnBin } from "./node-process.js"

// Issue 16 item 11, through the real binaries: help that says what each option does, without
// colours where they do not belong, one --log-level; errors naming the command and the node.
const ESC = "\x1b"
afterEach(killAll)
const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "")

const run = async (bin: "prolo" | "prolo-node", args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) => {
  const p = spawnBin(bin, args, env)
  const code = await exitWithin(p, 60_000)
  return { code, out: p.stdout, err: p.stderr }
}

describe("prolo and prolo-node help and usage errors", () => {
  it("prolo --help into a pipe, and with NO_COLOR: plain text, each option described", async () => {
    for (const env of [{}, { NO_COLOR: "1" }]) {
      const { code, out } = await run("prolo", ["--help"], env)
      expect(code).toBe(0)
      expect(out).not.toContain(ESC)
      expect(out).not.toContain("A user-defined piece of text.")
      expect(out).toContain("--node URL\n\n  the node to talk to (env PROLO_NODE")
      expect(out).toContain("--config DIR\n\n  configuration directory holding the secrets' profiles")
    }
  }, 70_000)

  it("on a terminal: colours, unless NO_COLOR", async () => {
    // `script` gives the binary a pseudo-terminal.
    const onTty = (env: NodeJS.ProcessEnv) =>
      spawnSync("script", ["-qec", `${process.execPath} bin/prolo.js --help`, "/dev/null"], {
        cwd: checkout,
        env: { ...process.env, ...env },
        encoding: "utf8",
        timeout: 60_000
      }).stdout
    expect(onTty({ NO_COLOR: "" })).toContain(ESC)
    expect(onTty({ NO_COLOR: "1" })).not.toContain(ESC)
  }, 130_000)

  it("prolo-node --help lists --log-level once, with its own choices", async () => {
    const { code, out } = await run("prolo-node", ["--help"])
    expect(code).toBe(0)
    expect(out.split("\n").filter((l) => l.startsWith("--log-level"))).toEqual(["--log-level trace | debug | info | warning | error | none"])
    expect(out).not.toContain("fatal") // the built-in one's choices
    expect(out).not.toContain(ESC)
    // after the options, as an operator types it under a unit's command line: the same help
    const late = await run("prolo-node", ["--layer", "rhfs", "--hfs", "0,1", "--help"])
    expect(late.code).toBe(0)
    expect(late.out).toBe(out)
  }, 70_000)

  it("a mistyped subcommand is reported against the command it was typed under", async () => {
    const mdb = await run("prolo", ["mdb", "lst"])
    expect(mdb.code).toBe(2)
    expect(lines(mdb.err)).toEqual([
      'prolo mdb: unknown command "lst"; use one of add, del, list, set, switch-add, switch-del, update (prolo mdb --help)'
    ])
    const top = await run("prolo", ["--node", "http://127.0.0.1:1", "sttus"])
    expect(top.code).toBe(2)
    expect(lines(top.err)).toEqual(['prolo: unknown command "sttus"; use one of hfs, mdb, nbd, status, udb (prolo --help)'])
  }, 70_000)

  it("prolo mdb with the node down names the URL and the cause", async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    const { code, err } = await run("prolo", ["mdb", "--node", url, "list"])
    expect(code).toBe(2)
    expect(lines(err)).toHaveLength(1)
    expect(lines(err)[0]).toMatch(
      new RegExp(`^prolo mdb: cannot reach the node at ${url}: .*ECONNREFUSED 127\\.0\\.0\\.1:\\d+ \\(is it running\\? --node or PROLO_NODE\\)$`)
    )
    // Given before the subcommand, --node reaches it (it used to be dropped for the default).
    for (const args of [["--node", url, "mdb", "list"], [`--node=${url}`, "mdb", "list"]]) {
      const top = await run("prolo", args)
      expect(top.code).toBe(2)
      expect(lines(top.err)[0]).toMatch(new RegExp(`^prolo mdb: cannot reach the node at ${url}: `))
    }
  }, 70_000)
})
