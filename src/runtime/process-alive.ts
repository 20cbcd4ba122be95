import { readFileSync } from "node:fs"

/** Whether process `pid` still exists (signal 0 probes without signalling; EPERM: it exists, as another user). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Whether process `pid` still runs: exists and is not a zombie (an orphan that exited stays a
 * zombie until init reaps it, which may take a while).
 */
export const running = (pid: number): boolean => {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return false
  }
  // "<pid> (<comm>) <state> …": comm may hold spaces and parentheses, the state follows the last ")"
  return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z"
}
