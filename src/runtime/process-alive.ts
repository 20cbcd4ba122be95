/** Whether process `pid` still exists (signal 0 probes without signalling). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
