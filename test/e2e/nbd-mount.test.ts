// A home mounted over our NBD server, end to end, with real clients: an ext4 image built
// with `mke2fs -d` is served by `prolo nbd serve --export =IMAGE` (the default export),
// attached with `nbdfuse … nbd://127.0.0.1:PORT` (libnbd, multi-conn, no export name),
// loop-mounted, read, written (20 MiB file, 500 small files), a file deleted, fstrimmed
// (TRIM → punched holes), unmounted, and then the image is checked offline with e2fsck and
// debugfs. The same steps as the nbd-mount-home-test.sh the server was first tried with.
//
// The kernel NBD client does not exist on these machines (no CONFIG_BLK_DEV_NBD), hence
// nbdfuse + loop. Mounting needs root: as another user the test is skipped and says so in
// one line. As root, a missing /dev/fuse, loop device or tool FAILS with the reason: a
// mount test that silently passes where it cannot mount proves nothing.
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { until } from "../nbd/harness.js"
import { killAll } from "./node-process.js"
import { runTool, startNbdServe, TOOLS_PATH } from "./nbd-serve.js"

const MiB = 1024 * 1024
const notRoot = process.getuid?.() !== 0 ? "needs root (mount -o loop, FUSE as root)" : undefined
if (notRoot !== undefined) console.warn(`nbd-mount.test.ts SKIPPED: ${notRoot}`)

// Why this root machine cannot run the mount, or undefined when it can.
const cannotMount = async (): Promise<string | undefined> => {
  for (const dev of ["/dev/fuse", "/dev/loop-control"]) {
    try {
      fs.closeSync(fs.openSync(dev, "r+"))
    } catch (err) {
      return `${dev} is not usable (${(err as Error).message}): the kernel needs CONFIG_FUSE_FS and CONFIG_BLK_DEV_LOOP, a container needs the device`
    }
  }
  const filesystems = fs.readFileSync("/proc/filesystems", "utf8")
  for (const fsType of ["fuse", "ext4"]) {
    if (!new RegExp(`\\s${fsType}\\n`).test(filesystems)) return `the kernel has no ${fsType} filesystem (/proc/filesystems)`
  }
  const tools = ["nbdfuse", "nbdinfo", "fusermount3", "mke2fs", "e2fsck", "debugfs", "fstrim", "mount", "umount", "mountpoint", "findmnt", "sync"]
  const missing: Array<string> = []
  for (const t of tools) if ((await runTool("sh", ["-c", `command -v ${t}`])).code !== 0) missing.push(t)
  if (missing.length > 0) return `missing tools: ${missing.join(", ")} (Debian: libnbd-bin fuse3 e2fsprogs util-linux coreutils)`
  return undefined
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")
const allocatedMiB = (file: string) => (fs.statSync(file).blocks * 512) / MiB

// Runs a tool that must succeed; its output goes into the failure message otherwise.
const must = async (command: string, args: ReadonlyArray<string>, timeoutMs = 120_000) => {
  const r = await runTool(command, args, { timeoutMs })
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} → ${r.code}\n${r.stdout}${r.stderr}`)
  return r.stdout
}

afterEach(killAll)

describe("home over NBD (nbdfuse + loop + ext4)", () => {
  it.skipIf(notRoot !== undefined)(
    notRoot === undefined ? "mounts the default export, reads, writes, trims and leaves a clean image" : `SKIPPED: ${notRoot}`,
    async () => {
      const reason = await cannotMount()
      if (reason !== undefined) throw new Error(`this machine cannot run the NBD mount test: ${reason}`)
      // Under /var/tmp, not a tmpfs /tmp: the image must be a sparse file on a real filesystem.
      const w = fs.mkdtempSync(path.join(fs.existsSync("/var/tmp") ? "/var/tmp" : os.tmpdir(), "prolo-nbd-home-"))
      const img = path.join(w, "home.img")
      const fuseDir = path.join(w, "fuse")
      const fuseFile = path.join(fuseDir, "home.img")
      const home = path.join(w, "home")
      let mounted = false
      let fused = false
      let nbdfusePid: number | undefined
      try {
        // ---- the image
        const skel = path.join(w, "skel")
        fs.mkdirSync(path.join(skel, "Documents"), { recursive: true })
        fs.mkdirSync(path.join(skel, ".config"), { mode: 0o700 })
        fs.mkdirSync(fuseDir)
        fs.mkdirSync(home)
        fs.writeFileSync(path.join(skel, "Documents", "hello.txt"), "hello from alice\n")
        const blob = randomBytes(3 * MiB)
        fs.writeFileSync(path.join(skel, "blob.bin"), blob)
        fs.symlinkSync("Documents/hello.txt", path.join(skel, "link"))
        await must("mke2fs", ["-q", "-F", "-t", "ext4", "-d", skel, "-L", "home", img, "256M"])
        const built = allocatedMiB(img)

        // ---- served as the default export, attached without an export name
        const server = await startNbdServe(["--export", `=${img}`])
        const uri = `nbd://127.0.0.1:${server.port}`
        expect((await must("nbdinfo", ["--size", uri])).trim()).toBe(String(256 * MiB))
        const pidFile = path.join(w, "nbdfuse.pid")
        const nbdfuse = spawn("nbdfuse", ["-P", pidFile, fuseFile, uri], { env: { ...process.env, PATH: TOOLS_PATH }, stdio: ["ignore", "pipe", "pipe"] })
        let nbdfuseOut = ""
        nbdfuse.stdout.setEncoding("utf8").on("data", (d: string) => (nbdfuseOut += d))
        nbdfuse.stderr.setEncoding("utf8").on("data", (d: string) => (nbdfuseOut += d))
        const nbdfuseExited = new Promise<number | string>((resolve) => nbdfuse.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")))
        nbdfusePid = nbdfuse.pid
        // nbdfuse writes its pid file once the FUSE file is served.
        await until(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "", `nbdfuse to serve ${fuseFile} (${nbdfuseOut})`, 6000)
        fused = true
        expect(fs.statSync(fuseFile).size).toBe(256 * MiB)

        // ---- mounted: read what mke2fs put there
        await must("mount", ["-o", "loop,discard", fuseFile, home])
        mounted = true
        expect(await must("findmnt", ["-no", "SOURCE", home])).toMatch(/^\/dev\/loop\d+/)
        expect(fs.readFileSync(path.join(home, "Documents", "hello.txt"), "utf8")).toBe("hello from alice\n")
        expect(sha256(fs.readFileSync(path.join(home, "blob.bin")))).toBe(sha256(blob))
        expect(fs.readlinkSync(path.join(home, "link"))).toBe("Documents/hello.txt")
        expect(fs.statSync(path.join(home, ".config")).mode & 0o777).toBe(0o700)

        // ---- written: a 20 MiB file, 500 small files, one file deleted, trimmed
        const fresh = randomBytes(20 * MiB)
        fs.writeFileSync(path.join(home, "Documents", "new.bin"), fresh)
        fs.mkdirSync(path.join(home, "many"))
        for (let i = 1; i <= 500; i++) fs.writeFileSync(path.join(home, "many", `f${i}`), `file ${i}\n`)
        fs.rmSync(path.join(home, "blob.bin"))
        await must("sync", ["-f", path.join(home, "Documents", "new.bin")])
        const trimmed = await must("fstrim", ["-v", home])
        // fstrim went through nbdfuse as TRIM: ext4 reports what it discarded.
        expect(trimmed).toMatch(/: [1-9][0-9.]* [KMG]iB \([0-9]+ bytes\) trimmed/)
        await must("umount", [home])
        mounted = false
        await must("fusermount3", ["-u", fuseDir])
        fused = false
        expect(await nbdfuseExited).toBe(0)

        // ---- the server stops cleanly; the image is checked offline
        server.spawned.child.kill("SIGTERM")
        expect(await server.spawned.exited, server.output()).toBe(0)
        const fsck = await runTool("e2fsck", ["-fn", img])
        expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0)
        const cat = await runTool("sh", ["-c", `debugfs -R "cat /Documents/new.bin" "${img}" 2>/dev/null | sha256sum`])
        expect(cat.stdout.split(" ")[0]).toBe(sha256(fresh))
        expect((await runTool("debugfs", ["-R", "cat /many/f500", img])).stdout).toBe("file 500\n")
        expect((await runTool("debugfs", ["-R", "stat /blob.bin", img])).stderr).toMatch(/not found/)
        // TRIM punched holes: without them the image would hold at least what mke2fs wrote
        // plus the new 20 MiB file; with them the deleted 3 MiB blob is given back.
        const after = allocatedMiB(img)
        console.log(`home image: ${built.toFixed(1)} MiB allocated after mke2fs, ${after.toFixed(1)} MiB after the test (${trimmed.trim()})`)
        expect(after).toBeLessThan(built + 20)
      } finally {
        if (mounted) await runTool("umount", ["-l", home])
        if (fused) await runTool("fusermount3", ["-u", fuseDir])
        if (nbdfusePid !== undefined) {
          try {
            process.kill(nbdfusePid, "SIGKILL")
          } catch {
            // already gone
          }
        }
        fs.rmSync(w, { recursive: true, force: true })
      }
    },
    300_000
  )
})
