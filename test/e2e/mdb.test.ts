import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { gwMachine } from "../mdb/fixtures.js"
import { pidsWithArg } from "../support/processes.js"
import { checkout, exitWithin, killAll, spawnBin, startNode } from "./node-process.js"

// The whole path an operator takes: a `--layer all` node with its embedded PostgreSQL,
// `prolo mdb add` over the authenticated rpc, `GET /call/query` as curl would, then SIGTERM.

const configDir = path.join(checkout, "etc/prologin")

afterEach(killAll)

/** `prolo mdb …` against the node, as an operator runs it (each run costs a node start-up). */
const prolo = async (url: string, args: ReadonlyArray<string>) => {
  const cli = spawnBin("prolo", ["mdb", ...args], { PROLO_NODE: url, PROLO_CONFIG_DIR: configDir })
  const code = await exitWithin(cli, 60_000)
  return { code, stdout: cli.stdout, stderr: cli.stderr }
}

describe("e2e: mdb on a --layer all node", () => {
  it("prolo mdb add, GET /call/query, then SIGTERM stops the node and its embedded PostgreSQL", async () => {
    const dataRoot = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-e2e-mdb-"))
    try {
      // the embedded PostgreSQL runs as the `postgres` user when we are root: it must reach its data dir
      await fs.chmod(dataRoot, 0o755)
      const started = Date.now()
      const { node, url } = await startNode(["--layer", "all", "--config", configDir], { PROLO_DATA_DIR: dataRoot })
      const readyMs = Date.now() - started
      const output = () => node.stderr + node.stdout

      const add = await prolo(url, [
        "add",
        ...["--hostname", "gw", "--mac", "11:22:33:44:55:66", "--ip", "192.168.1.254", "--rfs", "0", "--hfs", "0"],
        ...["--mtype", "service", "--room", "pasteur", "--aliases", gwMachine.aliases]
      ])
      expect(add, output()).toMatchObject({ code: 0, stdout: "added gw 192.168.1.254 11:22:33:44:55:66 (service, pasteur)\n" })

      const res = await fetch(`${url}/call/query`)
      expect(res.headers.get("content-type")).toBe("application/json")
      expect(JSON.parse(await res.text())).toEqual({ type: "result", data: [gwMachine] })

      // A refused write is one clear line and exit status 2 (the in-process CLI test covers the
      // other subcommands).
      const dup = await prolo(url, ["add", "--hostname", "ns", "--mac", "66:55:44:33:22:11", "--mtype", "service"])
      expect(dup).toEqual({ code: 2, stdout: "", stderr: "prolo mdb: hostname ns is already used by machine gw\n" })
      const list = await prolo(url, ["list"])
      expect(list.code).toBe(0)
      expect(list.stdout).toBe(
        [
          "HOSTNAME  IP             MAC                MTYPE    ROOM     RFS  HFS  FAULTY  ALIASES",
          `gw        192.168.1.254  11:22:33:44:55:66  service  pasteur  0    0            ${gwMachine.aliases}`,
          ""
        ].join("\n")
      )

      const dbDir = path.join(dataRoot, "db")
      expect(await pidsWithArg(dbDir)).not.toEqual([])
      const stopping = Date.now()
      node.child.kill("SIGTERM")
      expect(await exitWithin(node, 30_000), output()).toBe(0)
      const stopMs = Date.now() - stopping
      // The node stops its PostgreSQL before it exits: nothing left at once.
      expect(await pidsWithArg(dbDir)).toEqual([])
      console.log(`e2e mdb: node ready in ${readyMs} ms (initdb + start + migrate), stopped in ${stopMs} ms`)
    } finally {
      await killAll()
      await fs.rm(dataRoot, { recursive: true, force: true })
    }
  }, 240_000)
})
