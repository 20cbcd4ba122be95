/**
 * The machine's name as MDB knows it: the system hostname minus its last dot-component
 * (`pas-r01p01.prolo` → `pas-r01p01`); a name without a dot is kept (the original's rule).
 */
export const machineName = (systemHostname: string): string => {
  const name = systemHostname.trim()
  const dot = name.lastIndexOf(".")
  return dot <= 0 ? name : name.slice(0, dot)
}
