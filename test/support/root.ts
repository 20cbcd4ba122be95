// Tests that only root can run (the embedded PostgreSQL as the `postgres` user, mounts).
// CI runs as root and fails on any skipped test; elsewhere each such test says why in one line.
export const isRoot = process.getuid?.() === 0

/** Prints the one line for a test skipped because we are not root; returns whether to skip. */
export const skipUnlessRoot = (what: string): boolean => {
  if (!isRoot) console.warn(`skipped (needs root): ${what}`)
  return !isRoot
}
