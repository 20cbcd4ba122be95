import { execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { promisify } from "node:util"
import { spawnTracked, type Spawned } from "../e2e/node-process.js"

// Network namespaces a test creates for real daemons (named, dhcpd, udhcpc): two namespaces
// joined by a veth pair, addresses only on their interfaces, deleted by `remove` (which also
// ends any process left in them).

const run = promisify(execFile)

export const sh = async (argv: ReadonlyArray<string>): Promise<string> => {
  const [cmd = "", ...args] = argv
  const { stdout, stderr } = await run(cmd, args, { timeout: 30_000 })
  return `${stdout}${stderr}`
}

/** Kills every process left in each namespace, then deletes it (missing ones are fine). */
export const removeNamespaces = async (names: ReadonlyArray<string>): Promise<void> => {
  for (const ns of names) {
    const pids = await sh(["ip", "netns", "pids", ns]).catch(() => "")
    for (const pid of pids.split("\n").filter((p) => p !== "")) {
      try {
        process.kill(Number(pid), "SIGKILL")
      } catch {
        // already gone
      }
    }
    await sh(["ip", "netns", "delete", ns]).catch(() => undefined)
  }
}

export interface NetPair {
  /** The server side (named, dhcpd) and the client side (dig, udhcpc). */
  readonly server: string
  readonly client: string
  readonly serverIf: string
  readonly clientIf: string
  /** argv prefix running a command inside a namespace. */
  readonly exec: (ns: string) => ReadonlyArray<string>
  readonly remove: () => Promise<void>
}

/** Two namespaces, a veth pair, `lo` up in both; `serverAddrs`/`clientAddrs` as CIDR. */
export const makeNetPair = async (
  serverAddrs: ReadonlyArray<string>,
  clientAddrs: ReadonlyArray<string>
): Promise<NetPair> => {
  const tag = randomBytes(3).toString("hex")
  const server = `prolo-s-${tag}`
  const client = `prolo-c-${tag}`
  const serverIf = `pvs${tag}`
  const clientIf = `pvc${tag}`
  const exec = (ns: string) => ["ip", "netns", "exec", ns]
  const remove = () => removeNamespaces([server, client])

  try {
    await sh(["ip", "netns", "add", server])
    await sh(["ip", "netns", "add", client])
    await sh(["ip", "link", "add", serverIf, "netns", server, "type", "veth", "peer", "name", clientIf, "netns", client])
    for (const [ns, ifname, addrs] of [[server, serverIf, serverAddrs], [client, clientIf, clientAddrs]] as const) {
      await sh([...exec(ns), "ip", "link", "set", "lo", "up"])
      for (const a of addrs) await sh([...exec(ns), "ip", "addr", "add", a, "dev", ifname])
      await sh([...exec(ns), "ip", "link", "set", ifname, "up"])
    }
  } catch (e) {
    await remove()
    throw e
  }
  return { server, client, serverIf, clientIf, exec, remove }
}

/** A daemon in a namespace, output collected, killed by `killAll` of node-process.ts. */
export const spawnIn = (pair: NetPair, ns: string, argv: ReadonlyArray<string>): Spawned =>
  spawnTracked(spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] }))
