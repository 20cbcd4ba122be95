// How the benchmark and the mount e2e test start our NBD server: `prolo nbd serve`
// (bench/nbd-serve.ts runs the same program until bin/prolo.ts wires the command in),
// either under tsx as bin/prolo.js runs it, or bundled with esbuild into one file.
// Measured side by side on this 2-core box at load ~16: start-up 12.5 s and 214 MiB
// RSS under tsx (module loading through tsx's loader thread) against 1.7 s and 86 MiB
// bundled. The shared mount script gives a server only 10 s to answer.
import { build } from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"

const wired = (root: string): boolean => /\bnbdCommand\b/.test(fs.readFileSync(path.join(root, "bin", "prolo.ts"), "utf8"))

// Node arguments before `--listen …`, run from `root`.
export const nbdServeViaTsx = (root: string): string => (wired(root) ? "bin/prolo.js nbd serve" : "--import tsx bench/nbd-serve.ts")

// Bundles the server into node_modules/.cache (there the external native module koffi
// resolves at run time) and returns the node arguments; remove the file when done.
export const bundleNbdServe = async (root: string, name: string): Promise<{ readonly args: string; readonly file: string }> => {
  const isWired = wired(root)
  const file = path.join(root, "node_modules", ".cache", "prolo-nbd", `${name}-${process.pid}.mjs`)
  await build({
    entryPoints: [path.join(root, isWired ? "bin/prolo.ts" : "bench/nbd-serve.ts")],
    outfile: file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["koffi"],
    logLevel: "warning",
    // CommonJS dependencies inside an ESM bundle still call require().
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
  })
  return { args: `${file}${isWired ? " nbd serve" : ""}`, file }
}
