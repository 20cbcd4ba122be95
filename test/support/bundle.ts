import { bundleIsFresh } from "../../bin/bundle-fresh.js"
import { buildDist } from "../../scripts/build.mjs"

export { bundleIsFresh }

/**
 * Rebuilds dist/ only when a source is newer (bin/bundle-fresh.js holds the rule). Returns
 * whether it built.
 */
export const ensureBundle = async (): Promise<boolean> => {
  if (bundleIsFresh()) return false
  await buildDist()
  return true
}
