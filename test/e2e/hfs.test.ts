import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { HfsRpcs } from "../../src/protocols/hfs.js"
import { makeRpcTcpClient } from "../../src/runtime/rpc-tcp.js"
import { probe } from "../hfs/support/mount.js"
import { copyProfiles, hfsServerIn } from "./config-copy.js"
import { checkout, exitWithin, killAll, spawnBin, startNode, waitForOutput } from "./node-process.js"

// The real binaries: `prolo-node --layer all` runs HFS 0 beside the gateway on the embedded
// database; machines and users come from MDB/UDB through the CLI; getHome over HFS 0's own
// rpc port (TCP+msgpack, hfs-client secret).

afterEach(killAll)

const START_MS = 180_000

const configFor = (root: string) =>
  copyProfiles(path.join(root, "config"), { "hfs-server.yml": hfsServerIn(path.join(root, "export")) })

const cli = async (env: NodeJS.ProcessEnv, ...args: Array<string>) => {
  const p = spawnBin("prolo", args, env)
  const code = await exitWithin(p, 60_000)
  return { code, out: p.stdout, err: p.stderr }
}

describe("prolo-node --layer all: HFS 0", () => {
  it(
    "getHome over HFS 0's port creates and grants the home; another machine's attach is refused; forged token, other HFS refused",
    async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), "hfs-e2e-"))
      // the embedded PostgreSQL runs as user postgres: it must reach its data directory
      await fs.chmod(root, 0o755)
      try {
        const config = await configFor(root)
        const { node, url } = await startNode(["--layer", "all", "--config", config], { PROLO_DATA_DIR: path.join(root, "data") }, START_MS)
        const [, rpcPort = ""] = await waitForOutput(node, /hfs0: rpc over tcp\+msgpack on 127\.0\.0\.1:(\d+)/, 60_000)
        const env = { PROLO_NODE: url, PROLO_CONFIG_DIR: config }
        expect((await cli(env, "mdb", "add", "--hostname", "pas-r01p01", "--mac", "11:22:33:44:55:01", "--ip", "192.168.0.10", "--mtype", "user", "--room", "pasteur", "--hfs", "0")).code).toBe(0)
        expect((await cli(env, "mdb", "add", "--hostname", "alt-r01p01", "--mac", "11:22:33:44:55:02", "--ip", "192.168.0.11", "--mtype", "user", "--room", "alt", "--hfs", "1")).code).toBe(0)
        await fs.writeFile(path.join(root, "users.txt"), "Jean\tDupont\n")
        expect((await cli(env, "udb", "import", "--file", path.join(root, "users.txt"))).code).toBe(0)

        const getHome = (secret: string, login: string, hostname: string) =>
          Effect.runPromise(
            Effect.scoped(
              Effect.flatMap(makeRpcTcpClient(HfsRpcs, { host: "127.0.0.1", port: Number(rpcPort), secret: Redacted.make(secret) }), (c) =>
                Effect.either(c.getHome({ login, hostname }))
              )
            )
          )
        // the HFS follows mdb/udb: wait (bounded) until it knows the machine and the user
        let grant = await getHome("dev-hfs-secret", "jdupont", "pas-r01p01")
        for (let i = 0; i < 100 && grant._tag === "Left" && ["UnknownMachine", "UnknownUser"].includes(grant.left._tag); i++) {
          await new Promise((r) => setTimeout(r, 200))
          grant = await getHome("dev-hfs-secret", "jdupont", "pas-r01p01")
        }
        if (grant._tag === "Left") throw new Error(`getHome failed: ${JSON.stringify(grant.left)}`)
        expect(grant.right).toMatchObject({ host: "127.0.0.1", generation: 1 })
        expect(grant.right.export).toMatch(/^jdupont@1:[0-9a-f]{32}$/)
        const image = path.join(root, "export", "hfs0", "jdupont.nbd")
        expect((await fs.stat(image)).size).toBe(2 * 1024 ** 3)

        // granted to 192.168.0.10: this machine (127.0.0.1) is refused, and it is counted
        const refused = await probe(`nbd://127.0.0.1:${grant.right.port}/${grant.right.export}`)
        expect(refused.ok).toBe(false)
        const metrics = await (await fetch(`${url}/metrics`)).text()
        expect(metrics).toMatch(/^prolo_hfs_nbd_rejected_total\{hfs="0",reason="wrong_machine"\} 1$/m)
        expect(metrics).toMatch(/^hfs_new_user_count\{hfs="0",user_type="user"\} 1$/m)
        expect(metrics).toMatch(/^hfs_get_hfs_summary_count\{hfs="0",user_type="user"\} 1$/m)
        expect(metrics).toMatch(/^prolo_hfs_grants_total\{hfs="0"\} 1$/m)

        // a forged token changes nothing
        const forged = await getHome("not-the-secret", "jdupont", "pas-r01p01")
        expect(forged._tag === "Left" && forged.left._tag).toBe("Unauthorized")
        // a machine of HFS 1 asking HFS 0: refused, no home created
        await fs.writeFile(path.join(root, "more.txt"), "Anne\tMartin\n")
        expect((await cli(env, "udb", "import", "--file", path.join(root, "more.txt"))).code).toBe(0)
        const other = await getHome("dev-hfs-secret", "amartin", "alt-r01p01")
        expect(other._tag === "Left" && other.left._tag).toBe("WrongHfs")

        const where = await cli(env, "hfs", "where", "jdupont")
        expect(where.out.trim(), where.err).toBe("jdupont: hfs0, generation 1, ready")
        const list = await cli(env, "hfs", "list")
        expect(list.out).toMatch(/^jdupont\s+hfs0\s+1\s+ready$/m)
        expect(list.out).not.toContain("amartin")
        const status = await cli(env, "hfs", "status")
        expect(status.out).toContain(`hfs0: 127.0.0.1 rpc ${rpcPort}`)
        expect(status.out).toMatch(/^jdupont\s+pas-r01p01\s+192\.168\.0\.10\s+1\s+0$/m)

        node.child.kill("SIGTERM")
        expect(await exitWithin(node, 60_000), node.stderr).toBe(0)
      } finally {
        await fs.rm(root, { recursive: true, force: true })
      }
    },
    START_MS + 300_000
  )

  it("a bad --hfs: one line naming it, exit 2, nothing started", async () => {
    for (const [value, text] of [
      ["0,x", 'expected a comma list of HFS ids such as 0,1, got "0,x"'],
      ["1,1", 'an HFS id is given twice in "1,1"'],
      ["-1", "expected a comma list of HFS ids"]
    ] as const) {
      const node = spawnBin("prolo-node", ["--layer", "rhfs", "--hfs", value, "--listen", "127.0.0.1:0", "--config", "etc/prologin"])
      expect(await exitWithin(node, 60_000)).toBe(2)
      const lines = node.stderr.split("\n").filter((l) => l.trim() !== "")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`prolo-node: --hfs: ${text}`)
    }
  })
})
