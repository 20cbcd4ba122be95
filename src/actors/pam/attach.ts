import { Effect, Schema } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { HomeGrant } from "../../protocols/hfs.js"
import type { Attachment } from "../../protocols/pam-session.js"
import { running } from "../../runtime/process-alive.js"
import { runTool } from "../../runtime/run-tool.js"
import type { AttachMode } from "./config.js"

// Attaching a granted export as a block device, and detaching it. Two clients:
//  - kernel: `nbd-client -N <export> <host> <port> /dev/nbdN`, a free device per session (the
//    original always used /dev/nbd0, one home per machine);
//  - fuse: `nbdfuse` serves the export as a file on a FUSE mount, a loop device over that file
//    (machines without the nbd module, e.g. our test machines). nbdfuse runs detached, as root,
//    with no descriptor of ours: pam_exec reads our stdout until it closes.

/** One step of attaching, mounting or detaching failed; `step` names it for the greeter line. */
export class AttachFailed extends Schema.TaggedError<AttachFailed>()("AttachFailed", {
  step: Schema.String,
  message: Schema.String
}) {}

const fail = (step: string, message: string) => Effect.fail(new AttachFailed({ step, message: `${step}: ${message}` }))

const tool = (step: string, argv: ReadonlyArray<string>, timeoutMs = 30_000) =>
  Effect.flatMap(runTool(argv, timeoutMs), (r) =>
    r.code === 0 ? Effect.succeed(r.output) : fail(step, `${argv[0]} exited ${r.code}: ${r.output.split("\n").filter((l) => l !== "").pop() ?? ""}`)
  )

const exists = (p: string) => fs.existsSync(p)

/** Polls `check` every 20 ms for at most `ms` (a process becoming ready; bounded). */
const pollUntil = (check: () => boolean, ms: number) =>
  Effect.promise(async () => {
    const end = Date.now() + ms
    while (Date.now() < end) {
      if (check()) return true
      await new Promise((r) => setTimeout(r, 20))
    }
    return check()
  })

/** Whether the kernel NBD client can be used: the module is loaded, or loads. */
export const kernelHasNbd: Effect.Effect<boolean> = Effect.suspend(() =>
  exists("/sys/module/nbd") ? Effect.succeed(true) : Effect.map(runTool(["modprobe", "nbd"], 10_000), (r) => r.code === 0 && exists("/sys/module/nbd"))
)

export const chooseClient = (mode: AttachMode): Effect.Effect<"kernel" | "fuse"> =>
  mode === "auto" ? Effect.map(kernelHasNbd, (k) => (k ? "kernel" : "fuse")) : Effect.succeed(mode)

/** `nbd://host:port/<export>`: the export name percent-encoded (it holds `@` and `:`). */
export const nbdUri = (grant: HomeGrant): string => `nbd://${grant.host}:${grant.port}/${encodeURIComponent(grant.export)}`

// ---- kernel -----------------------------------------------------------------------------------

const freeNbdDevices = (): ReadonlyArray<string> =>
  fs
    .readdirSync("/sys/block")
    .filter((d) => /^nbd\d+$/.test(d) && !exists(`/sys/block/${d}/pid`))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))
    .map((d) => `/dev/${d}`)

const attachKernel = (grant: HomeGrant): Effect.Effect<Attachment, AttachFailed> =>
  Effect.gen(function* () {
    // Another session may take a device between our look and nbd-client: try the next one.
    for (const device of freeNbdDevices().slice(0, 8)) {
      const r = yield* runTool(["nbd-client", "-N", grant.export, grant.host, String(grant.port), device], 30_000)
      if (r.code === 0) return { _tag: "kernel", device } as const
      if (!/busy|in use/i.test(r.output)) return yield* fail("attach", `nbd-client: ${r.output.split("\n").pop() ?? `exit ${r.code}`}`)
    }
    return yield* fail("attach", "no free /dev/nbdN device")
  })

// ---- fuse + loop ------------------------------------------------------------------------------

const attachFuse = (grant: HomeGrant, workDir: string): Effect.Effect<Attachment, AttachFailed> =>
  Effect.gen(function* () {
    const fuseDir = path.join(workDir, "fuse")
    const pidFile = path.join(workDir, "nbdfuse.pid")
    const logFile = path.join(workDir, "nbdfuse.log")
    yield* Effect.sync(() => {
      fs.mkdirSync(fuseDir, { recursive: true, mode: 0o700 })
      fs.rmSync(pidFile, { force: true })
    })
    const log = fs.openSync(logFile, "w", 0o600)
    const child = yield* Effect.try({
      try: () => spawn("nbdfuse", ["-P", pidFile, path.join(fuseDir, "nbd"), nbdUri(grant)], { detached: true, stdio: ["ignore", log, log] }),
      catch: (e) => new AttachFailed({ step: "attach", message: `attach: cannot start nbdfuse: ${String(e)}` })
    }).pipe(Effect.ensuring(Effect.sync(() => fs.closeSync(log))))
    let exited = false
    child.once("exit", () => (exited = true))
    child.once("error", () => (exited = true))
    child.unref()
    const ready = yield* pollUntil(() => exited || exists(pidFile), 15_000)
    const why = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").trim().split("\n").pop() : "") || "no output"
    if (exited || !ready || child.pid === undefined) {
      if (child.pid !== undefined && !exited) child.kill("SIGKILL")
      yield* runTool(["fusermount3", "-u", "-q", fuseDir], 10_000)
      return yield* fail("attach", `nbdfuse ${exited ? "refused" : "did not start"}: ${why()}`)
    }
    const attachment: Attachment = { _tag: "fuse", pid: child.pid, fuseDir, loop: null }
    const loop = yield* tool("attach", ["losetup", "--find", "--show", path.join(fuseDir, "nbd")]).pipe(
      Effect.tapError(() => detach(attachment))
    )
    return { ...attachment, loop: loop.trim() }
  })

/** Attaches the grant's export; nothing stays attached when it fails. */
export const attach = (mode: AttachMode, grant: HomeGrant, workDir: string): Effect.Effect<Attachment, AttachFailed> =>
  Effect.flatMap(chooseClient(mode), (client): Effect.Effect<Attachment, AttachFailed> =>
    client === "kernel" ? attachKernel(grant) : attachFuse(grant, workDir)
  )

/** The block device an attachment gives. */
export const deviceOf = (a: Attachment): string | null => (a._tag === "kernel" ? a.device : a.loop)

/**
 * Detaches whatever part of `a` exists, every step tried even when one fails; fails with the
 * first failure once all were tried.
 */
export const detach = (a: Attachment): Effect.Effect<void, AttachFailed> =>
  Effect.gen(function* () {
    const problems: Array<string> = []
    if (a._tag === "kernel") {
      const r = yield* runTool(["nbd-client", "-d", a.device], 30_000)
      if (r.code !== 0) problems.push(`nbd-client -d ${a.device}: ${r.output}`)
    } else {
      if (a.loop !== null) {
        const r = yield* runTool(["losetup", "-d", a.loop], 30_000)
        if (r.code !== 0 && !/No such device/i.test(r.output)) problems.push(`losetup -d ${a.loop}: ${r.output}`)
      }
      if (exists(path.join(a.fuseDir, "nbd"))) {
        const r = yield* runTool(["fusermount3", "-u", a.fuseDir], 30_000)
        if (r.code !== 0) {
          // busy or stuck: a lazy unmount still ends the FUSE connection once unused
          const lazy = yield* runTool(["fusermount3", "-u", "-z", a.fuseDir], 30_000)
          if (lazy.code !== 0) problems.push(`fusermount3 -u ${a.fuseDir}: ${r.output}`)
        }
      }
      // nbdfuse outlives the prolo-pam that started it: once ended it is init's zombie
      if (running(a.pid) && !(yield* pollUntil(() => !running(a.pid), 5_000))) {
        yield* Effect.sync(() => process.kill(a.pid, "SIGKILL"))
      }
    }
    if (problems.length > 0) return yield* fail("detach", problems.join("; "))
  })

/** Mounts `device` (ext4) at `mountpoint`, which it creates; the home's root stays its owner's. */
export const mountHome = (device: string, mountpoint: string, uid: number, gid: number): Effect.Effect<void, AttachFailed> =>
  Effect.gen(function* () {
    yield* Effect.sync(() => fs.mkdirSync(mountpoint, { recursive: true, mode: 0o755 }))
    yield* tool("mount", ["mount", "-t", "ext4", "-o", "nosuid,nodev", device, mountpoint])
    yield* Effect.try({
      try: () => fs.chownSync(mountpoint, uid, gid),
      catch: (e) => new AttachFailed({ step: "mount", message: `mount: cannot give ${mountpoint} to uid ${uid}: ${String(e)}` })
    }).pipe(Effect.tapError(() => unmountHome(mountpoint).pipe(Effect.ignore)))
  })

/** Whether `dir` is a mount point now (/proc/self/mountinfo). */
export const isMounted = (dir: string): boolean => {
  const info = fs.readFileSync("/proc/self/mountinfo", "utf8")
  const escaped = dir.replace(/ /g, "\\040")
  return info.split("\n").some((line) => line.split(" ")[4] === escaped)
}

/** Unmounts `mountpoint` (sync first); a busy one is detached lazily. Absent or not mounted: nothing to do. */
export const unmountHome = (mountpoint: string): Effect.Effect<void, AttachFailed> =>
  Effect.gen(function* () {
    if (!exists(mountpoint) || !isMounted(mountpoint)) return
    yield* runTool(["sync", "-f", mountpoint], 60_000)
    const r = yield* runTool(["umount", mountpoint], 60_000)
    if (r.code === 0) return
    const lazy = yield* runTool(["umount", "-l", mountpoint], 60_000)
    if (lazy.code !== 0) return yield* fail("unmount", `umount ${mountpoint}: ${r.output}`)
    return yield* fail("unmount", `umount ${mountpoint}: ${r.output} (detached lazily)`)
  })
