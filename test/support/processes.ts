import * as fs from "node:fs/promises"
import * as net from "node:net"

export { alive } from "../../src/runtime/process-alive.js"

/** A TCP port on 127.0.0.1 free right now (bound then released), for a process a test starts. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })

/** The processes whose command line has `arg` as one argument (e.g. a PostgreSQL data directory). */
export const pidsWithArg = async (arg: string): Promise<Array<number>> => {
  const pids: Array<number> = []
  for (const entry of await fs.readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")
    if (cmdline.split("\0").includes(arg)) pids.push(Number(entry))
  }
  return pids
}

/** The direct children of `pid` (e.g. the backends and helpers of a PostgreSQL postmaster). */
export const childrenOf = async (pid: number): Promise<Array<number>> => {
  const children: Array<number> = []
  for (const entry of await fs.readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    const stat = await fs.readFile(`/proc/${entry}/stat`, "utf8").catch(() => "")
    // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    if (ppid === pid) children.push(Number(entry))
  }
  return children
}
