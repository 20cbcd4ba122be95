// The one rule for "may a binary start from dist/": the bundle must be newer than every .ts
// or .tsx file under src/ and bin/, else the sources run under tsx (slower start, never stale).
// Used by bin/launch.js at every start, and by the test setup and bench:start.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

const newestSource = (dir) => {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full))
    else if (entry.name.endsWith(".ts") || entry.name.endsWith(".tsx")) newest = Math.max(newest, fs.statSync(full).mtimeMs)
  }
  return newest
}

export const bundlePath = (name) => path.join(root, "dist", `${name}.mjs`)

/** Whether each named binary (default: all) would start from dist/ right now. */
export const bundleIsFresh = (names = ["prolo-node", "prolo", "prolo-nbd", "prolo-pam"]) => {
  const sources = Math.max(newestSource(path.join(root, "src")), newestSource(path.join(root, "bin")))
  return names.every((name) => {
    try {
      return fs.statSync(bundlePath(name)).mtimeMs >= sources
    } catch {
      return false
    }
  })
}
