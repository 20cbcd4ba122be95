import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs"
import * as path from "node:path"

// cgroup v2, where the machine offers a directory the worker may write: each jail gets its own
// child cgroup, which gives an exact process count (cgroup.procs), CPU time (cpu.stat), an
// atomic kill of the whole tree (cgroup.kill) and, when the parent delegates the controllers,
// memory.max / pids.max with their events (an exact `memory` / `pids` kill reason). Without
// one the rlimits still apply; the worker says so once in its log.

export interface CgroupBase {
  /** `<mount><own cgroup>/prolo-worker`: the jails' parent. */
  readonly dir: string
  readonly memory: boolean
  readonly pids: boolean
}

export type CgroupProbe = { readonly _tag: "Available"; readonly base: CgroupBase } | { readonly _tag: "Unavailable"; readonly why: string }

const read = (file: string): string => readFileSync(file, "utf8")

/** Where cgroup2 is mounted and which cgroup this process is in. */
const ownCgroup2 = (): string | undefined => {
  const mount = read("/proc/self/mountinfo")
    .split("\n")
    .map((line) => line.split(" "))
    .find((f) => f[f.indexOf("-") + 1] === "cgroup2")?.[4]
  const own = read("/proc/self/cgroup")
    .split("\n")
    .find((l) => l.startsWith("0::"))
    ?.slice(3)
  return mount === undefined || own === undefined ? undefined : path.join(mount, own)
}

/** Finds (`auto`) or takes the configured cgroup v2 directory and prepares `prolo-worker` under it. */
export const probeCgroup = (configured: string): CgroupProbe => {
  if (configured === "none") return { _tag: "Unavailable", why: "cgroup: none in the configuration" }
  try {
    const parent = configured === "auto" ? ownCgroup2() : configured
    if (parent === undefined) return { _tag: "Unavailable", why: "no cgroup v2 hierarchy mounted" }
    delegate(parent)
    const dir = path.join(parent, "prolo-worker")
    mkdirSync(dir, { recursive: true })
    const offered = words(path.join(dir, "cgroup.controllers"))
    const wanted = CONTROLLERS.filter((c) => offered.includes(c))
    try {
      if (wanted.length > 0) writeFileSync(path.join(dir, "cgroup.subtree_control"), wanted.map((c) => `+${c}`).join(" "))
    } catch {
      // Reported below as the controllers missing.
    }
    const enabled = words(path.join(dir, "cgroup.subtree_control"))
    return { _tag: "Available", base: { dir, memory: enabled.includes("memory"), pids: enabled.includes("pids") } }
  } catch (e) {
    return { _tag: "Unavailable", why: `cgroup v2 not writable: ${e instanceof Error ? e.message : String(e)}` }
  }
}

const CONTROLLERS = ["memory", "pids"]
const words = (file: string): Array<string> => read(file).trim().split(/\s+/).filter((w) => w !== "")

/**
 * A delegated cgroup (systemd `Delegate=memory pids`) offers the controllers but enables them
 * for its children only once it holds no process itself (cgroup v2's no-internal-process rule):
 * the worker moves itself into a `prolo-self` leaf, then enables them. Best effort: when that
 * fails (other processes share the cgroup) the controllers stay off and the start log says so.
 */
const delegate = (parent: string): void => {
  try {
    const offered = words(path.join(parent, "cgroup.controllers"))
    const enabled = words(path.join(parent, "cgroup.subtree_control"))
    const missing = CONTROLLERS.filter((c) => offered.includes(c) && !enabled.includes(c))
    if (missing.length === 0) return
    const self = path.join(parent, "prolo-self")
    mkdirSync(self, { recursive: true })
    writeFileSync(path.join(self, "cgroup.procs"), String(process.pid))
    writeFileSync(path.join(parent, "cgroup.subtree_control"), missing.map((c) => `+${c}`).join(" "))
  } catch {
    // Left as it was; probeCgroup reports what is missing.
  }
}

/** One jail's cgroup. */
export interface JailCgroup {
  readonly dir: string
  readonly procsFile: string
  /** Processes in it now. */
  readonly count: () => number
  readonly cpuSeconds: () => number
  /** `memory.events` oom_kill / `pids.events` max counters (0 when the controller is absent). */
  readonly oomKills: () => number
  readonly pidsRefused: () => number
  /** SIGKILL to every process in it, at once. */
  readonly kill: () => void
  readonly remove: () => void
}

const counter = (file: string, key: string): number => {
  if (!existsSync(file)) return 0
  const line = read(file).split("\n").find((l) => l.startsWith(`${key} `))
  return line === undefined ? 0 : Number(line.split(" ")[1])
}

export const createJailCgroup = (base: CgroupBase, name: string, limits: { memoryBytes: number; processes: number }): JailCgroup => {
  const dir = path.join(base.dir, name)
  mkdirSync(dir)
  if (base.memory) {
    writeFileSync(path.join(dir, "memory.max"), String(limits.memoryBytes))
    if (existsSync(path.join(dir, "memory.swap.max"))) writeFileSync(path.join(dir, "memory.swap.max"), "0")
  }
  if (base.pids) writeFileSync(path.join(dir, "pids.max"), String(limits.processes))
  const safe = <A>(f: () => A, fallback: A): A => {
    try {
      return f()
    } catch {
      return fallback
    }
  }
  return {
    dir,
    procsFile: path.join(dir, "cgroup.procs"),
    count: () => safe(() => read(path.join(dir, "cgroup.procs")).split("\n").filter((l) => l !== "").length, 0),
    cpuSeconds: () => safe(() => counter(path.join(dir, "cpu.stat"), "usage_usec") / 1e6, 0),
    oomKills: () => safe(() => counter(path.join(dir, "memory.events"), "oom_kill"), 0),
    pidsRefused: () => safe(() => counter(path.join(dir, "pids.events"), "max"), 0),
    kill: () => safe(() => writeFileSync(path.join(dir, "cgroup.kill"), "1"), undefined),
    // A cgroup can be removed only once empty: the caller has killed and reaped the tree.
    remove: () => safe(() => rmdirSync(dir), undefined)
  }
}
