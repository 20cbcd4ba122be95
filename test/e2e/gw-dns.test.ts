import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { alive } from "../support/processes.js"
import { makeNetPair, type NetPair, sh, spawnIn } from "../support/netns.js"
import { until } from "../nbd/harness.js"
import { gwMachine } from "../mdb/fixtures.js"
import { checkout, exitWithin, killAll, spawnBin, startNode, waitForOutput } from "./node-process.js"

// The gateway's DNS end to end: a `--layer all` node writes the zones into its data directory,
// a real BIND (`named`) in a network namespace loads them, `dig` from a second namespace asks
// forward, reverse and alien-view questions, and a machine added with `prolo mdb add` resolves
// after an `rndc reload` of that zone only: serial bumped, named's PID unchanged.

afterEach(killAll)

const NAMED_CONF = (dir: string, secret: string) => `
options {
\tdirectory "${dir}";
\tpid-file "${dir}/named.pid";
\tsession-keyfile "${dir}/session.key";
\tlisten-on { 127.0.0.1; 192.168.1.254; 192.168.250.254; };
\tlisten-on-v6 { none; };
\trecursion no;
\tdnssec-validation no;
};
key "rndc-key" { algorithm hmac-sha256; secret "${secret}"; };
controls { inet 127.0.0.1 port 953 allow { 127.0.0.1; } keys { "rndc-key"; }; };
include "${dir}/named-prolo.conf";
`
const RNDC_CONF = (secret: string) => `
key "rndc-key" { algorithm hmac-sha256; secret "${secret}"; };
options { default-key "rndc-key"; default-server 127.0.0.1; default-port 953; };
`

const dig = async (pair: NetPair, args: ReadonlyArray<string>): Promise<string> =>
  (await sh([...pair.exec(pair.client), "dig", "+short", "+tries=1", "+time=2", ...args]).catch((e: Error) => `dig failed: ${e.message}`)).trim()

const soaSerial = async (pair: NetPair, zone: string): Promise<number> =>
  Number((await dig(pair, ["@192.168.1.254", zone, "SOA"])).split(" ")[2])

describe("e2e: gateway DNS with a real named", () => {
  it("named loads our zones; a machine added through MDB resolves after a zone reload, no restart", async () => {
    const pair = await makeNetPair(["192.168.1.254/24", "192.168.250.254/24"], ["192.168.1.10/24", "192.168.250.10/24"])
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-e2e-dns-"))
    try {
      await fs.chmod(root, 0o755)
      const zones = path.join(root, "named")
      const config = path.join(root, "config")
      await fs.cp(path.join(checkout, "etc/prologin"), config, { recursive: true })
      const secret = randomBytes(32).toString("base64")
      await fs.mkdir(zones)
      await fs.writeFile(path.join(root, "named.conf"), NAMED_CONF(zones, secret))
      await fs.writeFile(path.join(root, "rndc.conf"), RNDC_CONF(secret))
      const rndc = [...pair.exec(pair.server), "rndc", "-c", path.join(root, "rndc.conf")]
      await fs.writeFile(path.join(config, "dns.yml"), `dir: ${zones}\nrndc: ${JSON.stringify(rndc)}\n`)

      const { node, url } = await startNode(["--layer", "all", "--config", config], { PROLO_DATA_DIR: path.join(root, "data") })
      const output = () => node.stderr + node.stdout
      const add = spawnBin("prolo", ["mdb", "add", "--hostname", "gw", "--mac", gwMachine.mac, "--ip", gwMachine.ip, "--mtype", "service", "--room", "pasteur", "--aliases", gwMachine.aliases], { PROLO_NODE: url, PROLO_CONFIG_DIR: config })
      expect(await exitWithin(add, 60_000), add.stderr).toBe(0)
      // Without gw (its `ns` alias) the forward zone has no address for its NS: named-checkzone
      // refuses it, and nothing is live until the operator adds the gateway, as in the docs.
      await until(async () => (await fs.readdir(zones)).filter((f) => f.endsWith(".zone")).length === 6, "the six zone files", 2000).catch((e: Error) => {
        throw new Error(`${e.message}:\n${output()}`)
      })

      const named = spawnIn(pair, pair.server, ["named", "-g", "-n", "1", "-c", path.join(root, "named.conf")])
      await waitForOutput(named, /running$/m, 60_000)
      const pid = named.child.pid!

      // Operator check of the docs: `host mdb.prolo <gw>` answers the gateway's address.
      await until(async () => (await dig(pair, ["@192.168.1.254", "mdb.prolo"])) === "192.168.1.254", "mdb.prolo to resolve", 400)
      expect(await dig(pair, ["@192.168.1.254", "-x", "192.168.1.254"])).toBe("gw.prolo.")
      // Aliens (192.168.250.0/24) see only netboot and ns.
      expect(await dig(pair, ["-b", "192.168.250.10", "@192.168.250.254", "netboot.prolo"])).toBe("192.168.250.254")
      expect(await dig(pair, ["-b", "192.168.250.10", "@192.168.250.254", "ns.prolo"])).toBe("192.168.250.254")
      expect(await dig(pair, ["-b", "192.168.250.10", "@192.168.250.254", "mdb.prolo"])).toBe("")
      expect(await dig(pair, ["@192.168.1.254", "-x", "192.168.250.7"])).toBe("unknown-7.alien.prolo.")

      const forward = await soaSerial(pair, "prolo")
      const service = await soaSerial(pair, "1.168.192.in-addr.arpa")
      const users = await soaSerial(pair, "0.168.192.in-addr.arpa")
      const user = spawnBin("prolo", ["mdb", "add", "--hostname", "pas-r01p01", "--mac", "aa:bb:cc:dd:ee:01", "--mtype", "user", "--room", "pasteur"], { PROLO_NODE: url, PROLO_CONFIG_DIR: config })
      expect(await exitWithin(user, 60_000), user.stderr).toBe(0)
      const added = Date.now()
      await until(async () => (await dig(pair, ["@192.168.1.254", "pas-r01p01.prolo"])) === "192.168.0.1", "pas-r01p01.prolo to resolve", 400)
      // A figure for the reader, not an assertion (bench:gw measures it).
      console.log(`e2e dns: pas-r01p01.prolo resolved ${Date.now() - added} ms after prolo mdb add returned`)
      expect(await dig(pair, ["@192.168.1.254", "-x", "192.168.0.1"])).toBe("pas-r01p01.prolo.")
      // Serials: bumped for the zones that changed, untouched for the one that did not.
      expect(await soaSerial(pair, "prolo")).toBe(forward + 1)
      expect(await soaSerial(pair, "0.168.192.in-addr.arpa")).toBe(users + 1)
      expect(await soaSerial(pair, "1.168.192.in-addr.arpa")).toBe(service)
      // Reloaded, not restarted.
      expect(named.child.pid).toBe(pid)
      expect(alive(pid)).toBe(true)
      expect(named.stderr).not.toMatch(/exiting/)
      expect(named.stderr).toMatch(/zone prolo\/IN\/normal: loaded serial/)

      node.child.kill("SIGTERM")
      expect(await exitWithin(node, 30_000), output()).toBe(0)
      named.child.kill("SIGTERM")
      expect(await exitWithin(named, 30_000)).toBe(0)
    } finally {
      await killAll()
      await pair.remove()
      await fs.rm(root, { recursive: true, force: true })
    }
  }, 300_000)
})
