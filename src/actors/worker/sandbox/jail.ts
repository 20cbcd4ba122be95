import { existsSync, lstatSync, readlinkSync } from "node:fs"
import type { SandboxLimits } from "../config.js"

// The bubblewrap command line of one jail: every namespace unshared (no network: only the
// loopback of an empty net namespace; own pid namespace, so that killing bwrap kills all),
// the system read-only and only what programs need of /etc (never /etc/shadow), a private
// /tmp, and writable only the directories given. The rlimits are set inside, just before the
// program, by util-linux `prlimit`: in the jail's own user namespace RLIMIT_NPROC counts this
// jail's processes only, so concurrent jails of the same user do not share one budget.

export interface JailSpec {
  /** Host directory → path inside, writable (the box, the match's socket directory). */
  readonly rw: ReadonlyArray<readonly [string, string]>
  /** Host path → path inside, read-only (the game's files). */
  readonly ro: ReadonlyArray<readonly [string, string]>
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  readonly limits: SandboxLimits
  readonly argv: ReadonlyArray<string>
}

/** What of /etc a compiler, an interpreter and the dynamic loader read; the rest stays out. */
const ETC = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/python3", "/etc/python3.11", "/etc/python3.12"]

/** /bin, /lib… are links into /usr on merged-/usr systems, directories elsewhere. */
const systemDirs = (): Array<string> =>
  ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"].flatMap((p): Array<string> => {
    if (!existsSync(p)) return []
    const st = lstatSync(p)
    return st.isSymbolicLink() ? ["--symlink", readlinkSync(p), p] : ["--ro-bind", p, p]
  })

export const bwrapArgs = (bwrap: string, spec: JailSpec): Array<string> => {
  const l = spec.limits
  return [
    bwrap,
    "--unshare-all", // user, pid, net, ipc, uts, cgroup
    "--die-with-parent",
    "--new-session", // no TIOCSTI into the worker's terminal
    "--info-fd", "4", // {"child-pid": …}: the jail's init, which the worker kills to end the jail
    "--ro-bind", "/usr", "/usr",
    ...systemDirs(),
    ...ETC.filter((p) => existsSync(p)).flatMap((p) => ["--ro-bind", p, p]),
    "--proc", "/proc",
    "--dev", "/dev",
    // Private /tmp in memory, no bigger than the program's memory budget.
    "--size", String(l.memory_mib * 1024 * 1024), "--tmpfs", "/tmp",
    ...spec.ro.flatMap(([host, inside]) => ["--ro-bind", host, inside]),
    ...spec.rw.flatMap(([host, inside]) => ["--bind", host, inside]),
    // The jail's own root (where /box/.. leads) read-only too; the mounts above keep theirs.
    "--remount-ro", "/",
    "--chdir", spec.cwd,
    "--clearenv",
    ...Object.entries({ PATH: "/usr/bin:/bin", HOME: "/tmp", LANG: "C.UTF-8", ...spec.env }).flatMap(([k, v]) => ["--setenv", k, v]),
    "--",
    "/usr/bin/prlimit",
    `--cpu=${l.cpu_seconds}`,
    `--as=${l.memory_mib * 1024 * 1024}`,
    `--nproc=${l.processes}`,
    `--fsize=${l.file_size_kib * 1024}`,
    "--core=0",
    "--",
    ...spec.argv
  ]
}
