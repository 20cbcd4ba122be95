// Starts a binary from dist/ when the bundle is newer than every source file, else from
// the TypeScript sources under tsx (slower start, never stale). See scripts/build.mjs.
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { bundleIsFresh, bundlePath, root } from "./bundle-fresh.js"

export const launch = async (name) => {
  if (process.env.PROLO_FROM_SOURCE !== "1" && bundleIsFresh([name])) return import(pathToFileURL(bundlePath(name)).href)
  const { register } = await import("tsx/esm/api")
  register()
  return import(pathToFileURL(path.join(root, "bin", `${name}.ts`)).href)
}
