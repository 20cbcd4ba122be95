import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { run } from "./images.js"

// A real client: nbdfuse exposes the NBD export as a file, the kernel loop-mounts it (root).

const exists = (p: string) => fs.access(p).then(() => true, () => false)

const waitFor = async (what: string, check: () => Promise<boolean>, tries = 200): Promise<void> => {
  for (let i = 0; i < tries; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export interface Mounted {
  readonly dir: string
  readonly unmount: () => Promise<void>
}

export const mountNbd = async (uri: string, work: string): Promise<Mounted> => {
  const fuse = path.join(work, "fuse")
  const dir = path.join(work, "mnt")
  const pidfile = path.join(work, "nbdfuse.pid")
  await fs.mkdir(fuse, { recursive: true })
  await fs.mkdir(dir, { recursive: true })
  await fs.rm(pidfile, { force: true })
  const child = spawn("nbdfuse", ["-P", pidfile, path.join(fuse, "nbd"), uri], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stopFuse = async () => {
    await run("fusermount3", ["-u", fuse])
    const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))])
    if (!gone) child.kill("SIGKILL")
  }
  try {
    await waitFor(`nbdfuse on ${uri} (${stderr})`, async () => {
      if (child.exitCode !== null) throw new Error(`nbdfuse exited: ${stderr.trim()}`)
      return exists(pidfile)
    })
    const m = await run("mount", ["-o", "loop", path.join(fuse, "nbd"), dir])
    if (m.code !== 0) throw new Error(`mount -o loop: ${m.stderr.trim()}`)
  } catch (e) {
    await stopFuse()
    throw e
  }
  return {
    dir,
    unmount: async () => {
      const u = await run("umount", [dir])
      await stopFuse()
      if (u.code !== 0) throw new Error(`umount: ${u.stderr.trim()}`)
    }
  }
}

/** Whether an NBD client can attach `uri` (nbdinfo), and what it said. */
export const probe = async (uri: string): Promise<{ readonly ok: boolean; readonly stderr: string }> => {
  const r = await run("nbdinfo", ["--size", uri])
  return { ok: r.code === 0, stderr: r.stderr }
}
