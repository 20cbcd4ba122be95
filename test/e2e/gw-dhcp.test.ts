import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { setUpDhcpd } from "../support/dhcpd.js"
import { makeNetPair, sh } from "../support/netns.js"
import { until } from "../nbd/harness.js"
import { gwMachine } from "../mdb/fixtures.js"
import { exitWithin, killAll, spawnBin, startNode } from "./node-process.js"

// The gateway's DHCP end to end: a `--layer all` node writes dhcpd.conf (checked by dhcpd -t),
// its restart command (re)starts a real ISC dhcpd in a network namespace, and busybox's udhcpc
// in a second namespace gets the static address of its MAC, or an alien-pool address for an
// unknown MAC. A change that leaves dhcpd.conf as it is restarts nothing.

afterEach(killAll)

const CLIENT_MAC = "aa:bb:cc:dd:ee:01"

describe("e2e: gateway DHCP with a real dhcpd", () => {
  it("a known MAC gets its fixed address, an unknown one the alien pool; restarts only on a changed file", async () => {
    const pair = await makeNetPair(["192.168.1.254/24", "192.168.250.254/24"], [])
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-e2e-dhcp-"))
    try {
      const { config, conf, pidFile, restarts, lastRestart } = await setUpDhcpd(pair, root)
      await sh([...pair.exec(pair.client), "ip", "link", "set", pair.clientIf, "address", CLIENT_MAC])

      const { node, url } = await startNode(["--layer", "all", "--config", config], { PROLO_DATA_DIR: path.join(root, "data") })
      const output = () => node.stderr + node.stdout
      const prolo = async (args: ReadonlyArray<string>) => {
        const cli = spawnBin("prolo", ["mdb", ...args], { PROLO_NODE: url, PROLO_CONFIG_DIR: config })
        expect(await exitWithin(cli, 60_000), cli.stderr).toBe(0)
      }
      await prolo(["add", "--hostname", "gw", "--mac", gwMachine.mac, "--ip", gwMachine.ip, "--mtype", "service", "--aliases", gwMachine.aliases])
      await prolo(["add", "--hostname", "pas-r01p01", "--mac", CLIENT_MAC, "--mtype", "user", "--room", "pasteur"])
      await until(async () => (await lastRestart()) === "2", "dhcpd restarted with both hosts", 4000).catch((e: Error) => {
        throw new Error(`${e.message}:\n${output()}`)
      })
      await until(async () => (await fs.readFile(pidFile, "utf8").catch(() => "")) !== "", "dhcpd's pid file", 4000)
      expect(await fs.readFile(conf, "utf8")).toContain(
        `host pas-r01p01 {\n\thardware ethernet ${CLIENT_MAC};\n\tfixed-address 192.168.0.1;\n\toption host-name "pas-r01p01";\n}\n`
      )

      const udhcpc = () => sh([...pair.exec(pair.client), "busybox", "udhcpc", "-i", pair.clientIf, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"])
      expect(await udhcpc()).toMatch(/lease of 192\.168\.0\.1 obtained/)
      await sh([...pair.exec(pair.client), "ip", "link", "set", pair.clientIf, "address", "02:00:00:00:00:99"])
      const alien = (await udhcpc()).match(/lease of 192\.168\.250\.(\d+) obtained/)
      expect(alien).not.toBeNull()
      expect(Number(alien![1])).toBeGreaterThanOrEqual(1)
      expect(Number(alien![1])).toBeLessThanOrEqual(200)

      // Faulty or not is not in dhcpd.conf: no restart. A new host is: one more.
      const before = (await fs.readFile(restarts, "utf8")).split("\n").length
      await prolo(["update", "--faulty", "bad disk", "pas-r01p01"])
      await prolo(["add", "--hostname", "pas-r01p02", "--mac", "aa:bb:cc:dd:ee:02", "--mtype", "user", "--room", "pasteur"])
      await until(async () => (await lastRestart()) === "3", "dhcpd restarted with the third host", 4000)
      expect((await fs.readFile(restarts, "utf8")).split("\n").length).toBe(before + 1)

      node.child.kill("SIGTERM")
      expect(await exitWithin(node, 30_000), output()).toBe(0)
    } finally {
      await killAll()
      await pair.remove()
      await fs.rm(root, { recursive: true, force: true })
    }
  }, 300_000)
})
