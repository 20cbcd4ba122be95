#!/usr/bin/env node
// Usage: node scripts/lock-optional-platforms.mjs package-lock.json (after any `npm install`).
// Adds lock entries for optional platform packages that this registry mirror does not serve,
// so `npm ci` sees a lock in sync with package.json (npm then skips them as optional).
import { readFileSync, writeFileSync } from "node:fs"
import { execFileSync } from "node:child_process"
const lockPath = process.argv[2]
const lock = JSON.parse(readFileSync(lockPath, "utf8"))
const pkgs = lock.packages
let added = 0
for (const [path, meta] of Object.entries(pkgs)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`
    if (pkgs[key] || pkgs[`${path}/node_modules/${name}`]) continue
    pkgs[key] = { version, ...(meta.dev ? { dev: true } : {}), optional: true }
    added++
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))))
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n")
console.log(`added ${added} entries`)
