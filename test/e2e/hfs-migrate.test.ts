import { Effect, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { createTestDatabase } from "../support/pg.js"
import { HfsRpcs } from "../../src/protocols/hfs.js"
import { makeRpcTcpClient } from "../../src/runtime/rpc-tcp.js"
import { fsck } from "../hfs/support/images.js"
import { probe } from "../hfs/support/mount.js"
import { copyProfiles, hfsServerIn } from "./config-copy.js"
import { checkout, exitWithin, killAll, spawnBin, startNode, waitForOutput } from "./node-process.js"

// The real binaries: `prolo-node --layer all --hfs 0,1` runs two HFS (127.0.10.1 and
// 127.0.10.2, lane hfs-migrate's loopback range) on the embedded database. A home made on
// hfs0 moves to hfs1 when the user logs on a machine of hfs1 (getHome over hfs1's own rpc
// port, the hand-over over hfs0's, the data over hfs0's transfer listener), then back with
// `prolo hfs migrate`. Then the same across processes: a gateway (mdb, udb, hubs) and two
// `prolo-node --layer rhfs` (hfs0, hfs1) on a test database, rpc_port fixed. MDB only takes machine addresses of its pools (192.168.0.0/24), which
// this host does not have: the data is marked in the image file itself before the move (an
// unused sector), and the NBD gate's refusals are read from the metrics.

afterEach(killAll)

const START_MS = 180_000
const MARK_AT = 512

const configFor = (root: string, extra: (server: string) => string = (s) => s) =>
  copyProfiles(path.join(root, "config"), {
    "hfs-server.yml": (text) =>
      extra(
        hfsServerIn(path.join(root, "export"))(text)
          .replace(/^bind: .*$/m, `bind: { "0": 127.0.10.1, "1": 127.0.10.2 }`)
          .replace(/^quota: .*$/m, "quota: { user: 64M, orga: 64M, root: 64M }")
          .replace(/^free_reserve: .*$/m, "free_reserve: 0")
          // no grace after a getHome: the test has no NBD session open when it moves the home
          .replace(/^live_grant_seconds: .*$/m, "live_grant_seconds: 0")
      )
  })

const cli = async (env: NodeJS.ProcessEnv, ...args: Array<string>) => {
  const p = spawnBin("prolo", args, env)
  const code = await exitWithin(p, 60_000)
  return { code, out: p.stdout, err: p.stderr }
}

const mark = (image: string, text: string) =>
  fs.open(image, "r+").then(async (f) => {
    await f.write(Buffer.from(text.padEnd(16, ".")), 0, 16, MARK_AT)
    await f.close()
  })
const markOf = (image: string) =>
  fs.open(image, "r").then(async (f) => {
    const b = Buffer.alloc(16)
    await f.read(b, 0, 16, MARK_AT)
    await f.close()
    return b.toString()
  })

describe("prolo-node: migration between HFS (one process --hfs 0,1, and two rhfs processes)", () => {
  it(
    "a home made on hfs0 moves to hfs1 on the next login there, intact and fenced; `prolo hfs migrate` moves it back",
    async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), "hfs-migrate-e2e-"))
      await fs.chmod(root, 0o755) // the embedded PostgreSQL (user postgres) reaches its data directory
      try {
        const config = await configFor(root)
        const { node, url } = await startNode(["--layer", "all", "--hfs", "0,1", "--config", config], { PROLO_DATA_DIR: path.join(root, "data") }, START_MS)
        const ports: Record<string, number> = {}
        for (const id of ["0", "1"]) {
          const [, port = ""] = await waitForOutput(node, new RegExp(`hfs${id}: rpc over tcp\\+msgpack on 127\\.0\\.10\\.${Number(id) + 1}:(\\d+)`), 60_000)
          ports[id] = Number(port)
        }
        const env = { PROLO_NODE: url, PROLO_CONFIG_DIR: config }
        const add = (hostname: string, mac: string, ip: string, hfs: string) =>
          cli(env, "mdb", "add", "--hostname", hostname, "--mac", mac, "--ip", ip, "--mtype", "user", "--room", "pasteur", "--hfs", hfs)
        const added = await add("pas-r01p01", "11:22:33:44:55:01", "192.168.0.10", "0")
        expect(added.code, added.err).toBe(0)
        expect((await add("alt-r01p01", "11:22:33:44:55:02", "192.168.0.11", "1")).code).toBe(0)
        await fs.writeFile(path.join(root, "users.txt"), "Jean\tDupont\n")
        expect((await cli(env, "udb", "import", "--file", path.join(root, "users.txt"))).code).toBe(0)

        const getHome = (id: string, hostname: string) =>
          Effect.runPromise(
            Effect.scoped(
              Effect.flatMap(
                makeRpcTcpClient(HfsRpcs, { host: `127.0.10.${Number(id) + 1}`, port: ports[id]!, secret: Redacted.make("dev-hfs-secret") }),
                (c) => Effect.either(c.getHome({ login: "jdupont", hostname }))
              )
            )
          )
        // the HFS follow mdb/udb: wait (bounded) until they know the machine and the user
        let first = await getHome("0", "pas-r01p01")
        for (let i = 0; i < 100 && first._tag === "Left" && ["UnknownMachine", "UnknownUser"].includes(first.left._tag); i++) {
          await new Promise((r) => setTimeout(r, 200))
          first = await getHome("0", "pas-r01p01")
        }
        if (first._tag === "Left") throw new Error(`getHome on hfs0 failed: ${JSON.stringify(first.left)}`)
        expect(first.right).toMatchObject({ host: "127.0.10.1", generation: 1 })
        const image0 = path.join(root, "export", "hfs0", "jdupont.nbd")
        const image1 = path.join(root, "export", "hfs1", "jdupont.nbd")
        await mark(image0, "made-on-hfs0")

        let moved = await getHome("1", "alt-r01p01")
        for (let i = 0; i < 100 && moved._tag === "Left" && ["UnknownMachine", "UnknownUser"].includes(moved.left._tag); i++) {
          await new Promise((r) => setTimeout(r, 200))
          moved = await getHome("1", "alt-r01p01")
        }
        if (moved._tag === "Left") throw new Error(`getHome on hfs1 failed: ${JSON.stringify(moved.left)}`)
        expect(moved.right).toMatchObject({ host: "127.0.10.2", generation: 4 })
        expect(await markOf(image1)).toBe("made-on-hfs0....")
        expect((await fsck(image1)).code).toBe(0)
        // the old grant's name on hfs0: refused there (no grant any more)
        expect((await probe(`nbd://127.0.10.1:${first.right.port}/${first.right.export}`)).ok).toBe(false)
        await mark(image1, "moved-to-hfs1")

        const where = await cli(env, "hfs", "where", "jdupont")
        expect(where.out.trim(), where.err).toBe("jdupont: hfs1, generation 4, ready")
        const metrics = await (await fetch(`${url}/metrics`)).text()
        expect(metrics).toMatch(/^hfs_migrate_remote_user_summary_count\{hfs="0"\} 1$/m)
        expect(metrics).toMatch(/^prolo_hfs_migration_wire_bytes_total\{hfs="1"\} \d+$/m)
        expect(metrics).toMatch(/^prolo_hfs_migrations_in_flight\{hfs="1"\} 0$/m)
        expect(metrics).toMatch(/^prolo_hfs_nbd_rejected_total\{hfs="0",reason="no_grant"\} 1$/m)

        // an operator moves it back; a wrong --to is one clear line
        const bad = await cli(env, "hfs", "migrate", "jdupont", "--to", "7")
        expect(bad.code).toBe(2)
        expect(bad.err, bad.err).toContain("hfs7 does not run on this node (it runs hfs0, hfs1)")
        const back = await cli(env, "hfs", "migrate", "jdupont", "--to", "0")
        expect(back.out.trim(), back.err).toBe("jdupont: hfs0, generation 6, ready")
        const again = await getHome("0", "pas-r01p01")
        if (again._tag === "Left") throw new Error(`getHome on hfs0 failed: ${JSON.stringify(again.left)}`)
        expect(again.right).toMatchObject({ host: "127.0.10.1", generation: 7 })
        expect(await markOf(image0)).toBe("moved-to-hfs1...")
        expect((await fsck(image0)).code).toBe(0)

        node.child.kill("SIGTERM")
        expect(await exitWithin(node, 60_000), node.stderr).toBe(0)
      } finally {
        await fs.rm(root, { recursive: true, force: true })
      }
    },
    START_MS + 300_000
  )

  it(
    "two `prolo-node --layer rhfs` processes (hfs0, hfs1) beside a gateway: the home moves between processes over their fixed rpc ports",
    async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), "hfs-rhfs-e2e-"))
      try {
        const url = await Effect.runPromise(createTestDatabase)
        // HFS in different processes find each other at bind/MDB address + the fixed rpc_port
        const config = await configFor(root, (s) => s.replace(/^rpc_port: .*$/m, "rpc_port: 20110"))
        await fs.writeFile(path.join(config, "node.yml"), `database:\n  url: ${JSON.stringify(Redacted.value(url))}\n  max_connections: 4\n`)
        const gw = await startNode(["--layer", "gw", "--config", config], {}, START_MS)
        for (const sub of ["mdbsync-sub", "udbsync-sub"]) {
          const file = path.join(config, `${sub}.yml`)
          await fs.writeFile(file, (await fs.readFile(file, "utf8")).replace(/^url: .*$/m, `url: ${gw.url}/`))
        }
        const env = { PROLO_NODE: gw.url, PROLO_CONFIG_DIR: config }
        expect((await cli(env, "mdb", "add", "--hostname", "pas-r01p01", "--mac", "11:22:33:44:55:01", "--ip", "192.168.0.10", "--mtype", "user", "--room", "pasteur", "--hfs", "0")).code).toBe(0)
        expect((await cli(env, "mdb", "add", "--hostname", "alt-r01p01", "--mac", "11:22:33:44:55:02", "--ip", "192.168.0.11", "--mtype", "user", "--room", "alt", "--hfs", "1")).code).toBe(0)
        await fs.writeFile(path.join(root, "users.txt"), "Jean\tDupont\n")
        expect((await cli(env, "udb", "import", "--file", path.join(root, "users.txt"))).code).toBe(0)
        const rhfs0 = await startNode(["--layer", "rhfs", "--hfs", "0", "--config", config], {}, START_MS)
        const rhfs1 = await startNode(["--layer", "rhfs", "--hfs", "1", "--config", config], {}, START_MS)
        await waitForOutput(rhfs0.node, /hfs0: rpc over tcp\+msgpack on 127\.0\.10\.1:20110/, 60_000)
        await waitForOutput(rhfs1.node, /hfs1: rpc over tcp\+msgpack on 127\.0\.10\.2:20110/, 60_000)

        const getHome = (id: number, hostname: string) =>
          Effect.runPromise(
            Effect.scoped(
              Effect.flatMap(makeRpcTcpClient(HfsRpcs, { host: `127.0.10.${id + 1}`, port: 20110, secret: Redacted.make("dev-hfs-secret") }), (c) =>
                Effect.either(c.getHome({ login: "jdupont", hostname }))
              )
            )
          )
        const until = async (id: number, hostname: string) => {
          let r = await getHome(id, hostname)
          for (let i = 0; i < 100 && r._tag === "Left" && ["UnknownMachine", "UnknownUser", "HfsUnavailable"].includes(r.left._tag); i++) {
            await new Promise((res) => setTimeout(res, 200))
            r = await getHome(id, hostname)
          }
          if (r._tag === "Left") throw new Error(`getHome on hfs${id} failed: ${JSON.stringify(r.left)}`)
          return r.right
        }
        const first = await until(0, "pas-r01p01")
        expect(first).toMatchObject({ host: "127.0.10.1", generation: 1 })
        const image0 = path.join(root, "export", "hfs0", "jdupont.nbd")
        const image1 = path.join(root, "export", "hfs1", "jdupont.nbd")
        await mark(image0, "made-by-rhfs0")
        const moved = await until(1, "alt-r01p01")
        expect(moved).toMatchObject({ host: "127.0.10.2", generation: 4 })
        expect(await markOf(image1)).toBe("made-by-rhfs0...")
        expect((await fsck(image1)).code).toBe(0)
        const where = await cli({ PROLO_NODE: rhfs1.url, PROLO_CONFIG_DIR: config }, "hfs", "where", "jdupont")
        expect(where.out.trim(), where.err).toBe("jdupont: hfs1, generation 4, ready")
        // and back with the operator command, on the node running hfs0
        const back = await cli({ PROLO_NODE: rhfs0.url, PROLO_CONFIG_DIR: config }, "hfs", "migrate", "jdupont", "--to", "0")
        expect(back.out.trim(), back.err).toBe("jdupont: hfs0, generation 6, ready")
        expect(await markOf(image0)).toBe("made-by-rhfs0...")

        for (const n of [rhfs0.node, rhfs1.node, gw.node]) {
          n.child.kill("SIGTERM")
          expect(await exitWithin(n, 60_000), n.stderr).toBe(0)
        }
      } finally {
        await fs.rm(root, { recursive: true, force: true })
      }
    },
    START_MS + 300_000
  )
})
