import * as fs from "node:fs/promises"
import * as path from "node:path"
import { alive } from "../runtime/process-alive.js"

// The embedded cluster's unix socket lives in a private temp directory named after the node
// that made it: `prolo-pg-<node pid>-XXXXXX`. A node killed with SIGKILL cannot remove its
// own (postgres, stopped by the watchdog, removes only its socket and lock file), so each
// start removes those whose node is dead. Never one whose node lives, nor one where a live
// postmaster still holds its socket lock, nor one not named by this scheme (its owner is
// unknown: it may be a node starting right now).

export const SOCKET_DIR_PREFIX = "prolo-pg-"

/** The `mkdtemp` prefix of this process's socket directories. */
export const socketDirPrefix = (pid: number = process.pid): string => `${SOCKET_DIR_PREFIX}${pid}-`

const NAMED = /^prolo-pg-([0-9]+)-[^/]+$/

// `.s.PGSQL.<port>.lock` starts with the postmaster's pid.
const lockHolders = async (dir: string): Promise<Array<number>> => {
  const entries = await fs.readdir(dir).catch(() => [] as Array<string>)
  const pids: Array<number> = []
  for (const entry of entries) {
    if (!/^\.s\.PGSQL\.[0-9]+\.lock$/.test(entry)) continue
    const text = await fs.readFile(path.join(dir, entry), "utf8").catch(() => "")
    const pid = Number(text.split("\n", 1)[0])
    if (Number.isInteger(pid) && pid > 0) pids.push(pid)
  }
  return pids
}

/** Removes the socket directories in `tmpDir` left by dead nodes; returns the paths removed. */
export const removeStaleSocketDirs = async (tmpDir: string): Promise<Array<string>> => {
  const removed: Array<string> = []
  for (const name of await fs.readdir(tmpDir).catch(() => [] as Array<string>)) {
    const owner = NAMED.exec(name)
    if (owner === null || alive(Number(owner[1]))) continue
    const dir = path.join(tmpDir, name)
    const stat = await fs.lstat(dir).catch(() => undefined)
    if (stat === undefined || !stat.isDirectory()) continue
    if ((await lockHolders(dir)).some(alive)) continue
    // Another user's directory, or one removed meanwhile: not ours to insist on.
    const done = await fs.rm(dir, { recursive: true, force: true }).then(
      () => true,
      () => false
    )
    if (done) removed.push(dir)
  }
  return removed
}
