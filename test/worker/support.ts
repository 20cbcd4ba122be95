import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { chmod, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { type ArchiveEntry, writeTgz } from "../../src/actors/worker/archive.js"
import type { ExecutorConfigInput, SandboxLimits } from "../../src/actors/worker/config.js"

// What the executor tests share: the reference game from the repo, small limits so that each
// sandbox case ends in a second or two, champions packed from the repo's samples or from a
// few lines of source, and the `cluster` jail user (created as .ci/run does when missing).

export const GAME = path.resolve("games/reference")

/** As .ci/run: the unprivileged user the jails run as. */
export const ensureClusterUser = (): void => {
  try {
    execFileSync("id", ["cluster"], { stdio: "ignore" })
  } catch {
    execFileSync("useradd", ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "cluster"])
  }
}

export const smallLimits = (over: Partial<SandboxLimits> = {}): SandboxLimits => ({
  cpu_seconds: 3,
  wall_seconds: 15,
  memory_mib: 256,
  processes: 32,
  file_size_kib: 1024,
  output_kib: 64,
  ...over
})

export const testConfig = (workDir: string, over: Partial<ExecutorConfigInput> = {}): ExecutorConfigInput => ({
  work_dir: workDir,
  compile: smallLimits({ cpu_seconds: 10, wall_seconds: 20, memory_mib: 512 }),
  server: smallLimits({ wall_seconds: 30 }),
  client: smallLimits(),
  game: {
    server: ["/usr/bin/python3", path.join(GAME, "server.py")],
    client: ["/usr/bin/python3", path.join(GAME, "client.py")],
    rules: path.join(GAME, "rules.txt"),
    binds: [GAME],
    server_time_ms: 1000,
    socket_timeout_ms: 10_000
  },
  ...over
})

/** A scratch directory for one test, removed at the end; the jail user may traverse it (bwrap binds as that user). */
export const scratch = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "prolo-worker-"))
    await chmod(dir, 0o711)
    return dir
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const file = (p: string, text: string | Uint8Array, mode = 0o644): ArchiveEntry => ({
  path: p,
  type: "file",
  mode,
  data: typeof text === "string" ? Buffer.from(text) : text
})

/** A champion archive from `{ name: contents }`. */
export const champion = (files: Record<string, string>): Uint8Array => writeTgz(Object.entries(files).map(([p, t]) => file(p, t)))

/** One of the repo's sample champions (games/reference/champions/<lang>). */
export const sample = (lang: "c" | "python"): Uint8Array => {
  const dir = path.join(GAME, "champions", lang)
  return writeTgz(readdirSync(dir).map((n) => file(n, readFileSync(path.join(dir, n)))))
}
