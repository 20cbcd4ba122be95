import { existsSync, readFileSync } from "node:fs"
import { Effect, Schema } from "effect"
import { probeCgroup } from "./cgroup.js"
import type { SandboxEnv } from "./run.js"

// What the sandbox needs of the machine, found once when the worker starts: bwrap, prlimit,
// the jail user, and a cgroup v2 directory if there is one. A missing piece is a clear error
// at start (the worker then runs nothing), never a silently unconfined program.

export class SandboxUnavailable extends Schema.TaggedError<SandboxUnavailable>()("SandboxUnavailable", {
  what: Schema.String,
  message: Schema.String
}) {}

/** uid and gid of `user` from /etc/passwd. */
const lookupUser = (user: string): { uid: number; gid: number } | undefined => {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === user)
  if (line === undefined) return undefined
  const f = line.split(":")
  return { uid: Number(f[2]), gid: Number(f[3]) }
}

export const makeSandboxEnv = (config: { readonly bwrap: string; readonly user: string; readonly cgroup: string }) =>
  Effect.gen(function* () {
    for (const [what, file, hint] of [
      ["bwrap", config.bwrap, "apt install bubblewrap"],
      ["prlimit", "/usr/bin/prlimit", "apt install util-linux"],
      ["setpriv", "/usr/bin/setpriv", "apt install util-linux"]
    ] as const) {
      if (!existsSync(file)) return yield* new SandboxUnavailable({ what, message: `${file} not found (${hint})` })
    }
    const self = process.getuid?.() ?? 0
    const ids = lookupUser(config.user)
    if (ids === undefined) {
      return yield* new SandboxUnavailable({
        what: "user",
        message: `jail user ${config.user} does not exist (useradd --system --no-create-home --shell /usr/sbin/nologin ${config.user})`
      })
    }
    if (ids.uid === 0) return yield* new SandboxUnavailable({ what: "user", message: `jail user ${config.user} is root` })
    if (self !== 0 && self !== ids.uid) {
      return yield* new SandboxUnavailable({ what: "user", message: `the worker runs as uid ${self}: run it as root or as ${config.user}` })
    }
    const cgroup = probeCgroup(config.cgroup)
    if (cgroup._tag === "Unavailable") {
      yield* Effect.logWarning(`sandbox: ${cgroup.why}; memory and process limits are rlimits only`)
    } else if (!cgroup.base.memory || !cgroup.base.pids) {
      const missing = ["memory", "pids"].filter((c) => !cgroup.base[c as "memory" | "pids"]).join(" and ")
      yield* Effect.logWarning(`sandbox: cgroup ${cgroup.base.dir} offers no ${missing} controller (not delegated); those limits are rlimits only`)
    }
    const env: SandboxEnv = { bwrap: config.bwrap, drop: self === 0 ? ids : undefined, cgroup }
    return env
  })
