import { build } from "esbuild"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleOptions } from "../../../scripts/build.mjs"

// A test's child process bundled once with esbuild, beside the transfer's hash thread (the hash
// pool loads `hfs-hash-worker.mjs` next to it): a start costs node's start and the bundle's
// load (~0.3 s), not tsx compiling the sources in the child and in each hash thread (seconds
// at load). The bundle lives inside the checkout (.tmp/ is ignored by git) so that its bare
// imports (koffi) resolve from node_modules.

export const checkout = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** Bundles `entry` (a path from the checkout) as `<dir>/<name>.mjs`; returns that path and the cleanup. */
export const bundleChild = async (name: string, entry: string): Promise<{ script: string; remove: () => Promise<void> }> => {
  const dir = path.join(checkout, ".tmp", `${name}-${process.pid}`)
  await build({
    ...bundleOptions,
    outdir: dir,
    entryPoints: { [name]: entry, "hfs-hash-worker": "src/actors/hfs/transfer/hash-worker.ts" }
  })
  return { script: path.join(dir, `${name}.mjs`), remove: () => fs.rm(dir, { recursive: true, force: true }) }
}
