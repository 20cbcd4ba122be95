// A home mounted over our NBD server, end to end, with real clients: the shared script
// (shared/tools/nbd-mount-home-test.sh) builds an ext4 image with `mke2fs -d`, starts our
// server on it, attaches it with nbdfuse (libnbd, multi-conn), loop-mounts the FUSE file,
// reads and writes files, deletes one, fstrims (TRIM → punched holes), unmounts, and
// checks the image offline with e2fsck and debugfs.
//
// The kernel NBD client does not exist on these machines (no CONFIG_BLK_DEV_NBD), hence
// nbdfuse + loop. Without root, /dev/fuse or loop devices this test FAILS with the
// reason: a mount test that silently passes where it cannot mount proves nothing.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { nbdServeArgs } from "../../bench/nbd-bundle.js"
import { alive, freePort } from "../support/processes.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const script = path.join(process.env["NBD_TOOLS"] ?? path.resolve(root, "..", "shared", "tools"), "nbd-mount-home-test.sh")
// Debian's tools first: the default python3/PATH may be a pyenv one.
const PATH = `/usr/bin:/usr/sbin:/bin:/sbin:${process.env["PATH"] ?? ""}`
const TIMEOUT_MS = 240_000

// Why this machine cannot run the mount, or undefined when it can.
const cannotMount = (): string | undefined => {
  if (!fs.existsSync(script)) return `the shared script ${script} is missing (set NBD_TOOLS)`
  if (process.getuid?.() !== 0) return "mounting needs root (mount -o loop, FUSE as root)"
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
  const missing = ["nbdfuse", "nbdinfo", "fusermount3", "mke2fs", "e2fsck", "debugfs", "fstrim", "mount", "mountpoint", "findmnt"].filter(
    (t) => spawnSync("sh", ["-c", `command -v ${t}`], { env: { ...process.env, PATH } }).status !== 0
  )
  if (missing.length > 0) return `missing tools: ${missing.join(", ")} (Debian: libnbd-bin fuse3 e2fsprogs util-linux)`
  return undefined
}

describe("home over NBD (nbdfuse + loop + ext4)", () => {
  it(
    "mounts, reads, writes, trims and leaves a clean image",
    async () => {
      const reason = cannotMount()
      if (reason !== undefined) throw new Error(`this machine cannot run the NBD mount test: ${reason}`)
      // From the dist/ bundle (see bench/nbd-bundle.ts): under tsx its start-up alone can
      // exceed the 10 s the shared script waits for a server on a loaded machine.
      const serverArgs = await nbdServeArgs()
      // The script needs the port before it starts the server, so a free port is picked first;
      // if another process takes it in between, the server says so and the run is repeated.
      const runOnce = async (): Promise<{ code: number | "timeout"; out: string }> => {
        const port = await freePort()
        // The script starts the server itself (setsid) and stops server, nbdfuse and mounts on exit.
        const command = `node ${serverArgs} --listen 127.0.0.1:${port} --export home=@IMG@`
        const child = spawn("bash", [script, command, String(port), "home"], {
          cwd: root,
          // MODE must be explicit: vitest exports MODE=test, which the script would take for
          // its no-mount debugfs fallback.
          env: { ...process.env, PATH, MODE: "loop", KEEP: "0" },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let out = ""
        child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
        child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d))
        const code = await new Promise<number | "timeout">((resolve) => {
          const timer = setTimeout(() => {
            child.kill("SIGTERM")
            resolve("timeout")
          }, TIMEOUT_MS)
          child.once("close", (c) => {
            clearTimeout(timer)
            resolve(c ?? 1)
          })
        })
        // Belt and braces: the server runs in its own session, out of reach of our signals.
        const serverPid = Number(/server up \(pid (\d+)\)/.exec(out)?.[1] ?? NaN)
        if (Number.isInteger(serverPid) && alive(serverPid)) process.kill(serverPid, "SIGKILL")
        return { code, out }
      }
      let run = await runOnce()
      for (let attempt = 1; attempt < 3 && run.code !== 0 && /EADDRINUSE|address already in use/i.test(run.out); attempt++) {
        run = await runOnce()
      }
      const { code, out } = run
      const summary = `exit ${code}\n${out}`
      expect(code, summary).toBe(0)
      expect(out, summary).toMatch(/# mount_home_test: 0 failure\(s\)/)
      for (const step of ["mounted:", "read 3 MiB blob (sha256 ok)", "e2fsck -fn clean", "new 20 MiB file intact in image", "small files intact", "deleted file gone"]) {
        expect(out, summary).toContain(`PASS ${step}`)
      }
      // fstrim went through nbdfuse as TRIM (ext4 reports trimmed bytes) and we punched
      // holes: without them the image would hold at least what mke2fs wrote plus the new
      // 20 MiB file (nbd-server, which ignores TRIM here, ends 1 MiB above that); with
      // them the deleted 3 MiB blob is given back.
      expect(out, summary).toMatch(/: [1-9][0-9.]* [KMG]iB \([0-9]+ bytes\) trimmed/)
      const built = Number(/image built \((\d+)M allocated/.exec(out)?.[1])
      const after = Number(/image allocation after test: (\d+)M/.exec(out)?.[1])
      expect(after, summary).toBeLessThan(built + 20)
    },
    TIMEOUT_MS + 30_000
  )
})
