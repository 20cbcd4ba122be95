import * as fs from "node:fs/promises"
import * as path from "node:path"
import { checkout } from "../e2e/node-process.js"
import type { NetPair } from "./netns.js"

// A real ISC dhcpd behind a node's DHCP generator (e2e test and bench:gw): in `root`, a config
// directory (a copy of etc/prologin) whose dhcp.yml has the node write `dhcpd.conf` and run a
// restart command doing what `systemctl restart` does, in the pair's server namespace: stop
// the running dhcpd, start a fresh one (it daemonizes; the namespace's removal ends it), then
// log how many host blocks it started with.

export interface Dhcpd {
  /** The config directory for `prolo-node --config`. */
  readonly config: string
  readonly conf: string
  readonly pidFile: string
  /** One line per completed restart: the number of hosts in the file it started with. */
  readonly restarts: string
  /** That count at the last restart, undefined before the first. */
  readonly lastRestart: () => Promise<string | undefined>
}

export const setUpDhcpd = async (pair: NetPair, root: string): Promise<Dhcpd> => {
  await fs.chmod(root, 0o755)
  const config = path.join(root, "config")
  await fs.cp(path.join(checkout, "etc/prologin"), config, { recursive: true })
  const conf = path.join(root, "dhcpd.conf")
  const leases = path.join(root, "dhcpd.leases")
  const pidFile = path.join(root, "dhcpd.pid")
  const restarts = path.join(root, "restarts.log")
  await fs.writeFile(leases, "")
  const restart = [
    "sh",
    "-c",
    `[ -f ${pidFile} ] && kill $(cat ${pidFile}) && while kill -0 $(cat ${pidFile}) 2>/dev/null; do :; done; ` +
      `exec ip netns exec ${pair.server} sh -c "dhcpd -4 -q -cf ${conf} -lf ${leases} -pf ${pidFile} ${pair.serverIf} && grep -c '^host ' ${conf} >> ${restarts}"`
  ]
  await fs.writeFile(path.join(config, "dhcp.yml"), `file: ${conf}\nrestart: ${JSON.stringify(restart)}\n`)
  const lastRestart = async () => (await fs.readFile(restarts, "utf8").catch(() => "")).trim().split("\n").at(-1) || undefined
  return { config, conf, pidFile, restarts, lastRestart }
}
