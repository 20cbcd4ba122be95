/** Whether process `pid` still exists (signal 0 probes without signalling; EPERM: it exists, as another user). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}
