// Starts a binary from dist/ when the bundle is newer than every source file, else from
// the TypeScript sources under tsx (slower start, never stale). See scripts/build.mjs.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

const newestSource = (dir) => {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full))
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(full).mtimeMs)
  }
  return newest
}

const bundleIsFresh = (bundle) => {
  try {
    const built = fs.statSync(bundle).mtimeMs
    return built >= newestSource(path.join(root, "src")) && built >= newestSource(path.join(root, "bin"))
  } catch {
    return false
  }
}

export const launch = async (name) => {
  const bundle = path.join(root, "dist", `${name}.mjs`)
  if (process.env.PROLO_FROM_SOURCE !== "1" && bundleIsFresh(bundle)) return import(pathToFileURL(bundle).href)
  const { register } = await import("tsx/esm/api")
  register()
  return import(pathToFileURL(path.join(root, "bin", `${name}.ts`)).href)
}
