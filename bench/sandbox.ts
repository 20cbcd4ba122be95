// `npm run bench:sandbox` (part (c) of the cluster benches): what a jail costs at start. A
// no-op program — `/bin/true`, and a no-op Python champion (`python3 -c pass`) — run bare
// (spawned by node, as the original's worker spawned isolate) and in the executor's jail
// (setpriv → bwrap with every namespace, system binds, prlimit, a cgroup when writable), in
// turns in the same process so that machine load hits both alike. Knob: ROUNDS [20].
// Needs root (the jail drops to the `cluster` user) and bubblewrap.
import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { chmodSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { jailDir } from "../src/actors/worker/box.js"
import { makeSandboxEnv } from "../src/actors/worker/sandbox/env.js"
import { runJailed } from "../src/actors/worker/sandbox/run.js"
import { ensureClusterUser, smallLimits } from "../test/worker/support.js"
import { benchLog, median } from "./support.js"

const ROUNDS = Number(process.env["ROUNDS"] ?? "20")
const log = benchLog("sandbox")

const bare = (argv: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
    child.stdout.resume()
    child.stderr.resume()
    child.once("error", reject)
    child.once("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(" ")}: exit ${code}`))))
  })

const main = Effect.gen(function* () {
  ensureClusterUser()
  const dir = yield* Effect.promise(() => mkdtemp(path.join(os.tmpdir(), "bench-sandbox-")))
  chmodSync(dir, 0o711)
  try {
    const env = yield* makeSandboxEnv({ bwrap: "/usr/bin/bwrap", user: "cluster", cgroup: "auto" })
    const box = path.join(dir, "box")
    yield* jailDir(box, env.drop)
    const programs: Array<[string, Array<string>]> = [
      ["/bin/true", ["/bin/true"]],
      ["python3 -c pass", ["/usr/bin/python3", "-c", "pass"]]
    ]
    log(`${ROUNDS} rounds; cgroup ${env.cgroup._tag === "Available" ? env.cgroup.base.dir : "none"}`)
    const results: Record<string, { bare: Array<number>; jail: Array<number> }> = {}
    for (const [name] of programs) results[name] = { bare: [], jail: [] }
    for (let round = 0; round < ROUNDS + 1; round++) {
      for (const [name, argv] of programs) {
        const b = yield* Effect.promise(() => bare(argv))
        const t0 = performance.now()
        const j = yield* runJailed(env, { rw: [[box, "/box"]], ro: [], cwd: "/box", env: {}, limits: smallLimits(), argv })
        const jailMs = performance.now() - t0
        if (j.exitCode !== 0) throw new Error(`${name} in the jail: exit ${j.exitCode}: ${j.merged}`)
        if (round === 0) continue // warm-up: page cache, first cgroup
        results[name]!.bare.push(b)
        results[name]!.jail.push(jailMs)
      }
    }
    console.log("program            bare (median ms)   jailed (median ms)   overhead   ratio")
    for (const [name] of programs) {
      const b = median(results[name]!.bare)
      const j = median(results[name]!.jail)
      console.log(`${name.padEnd(18)} ${b.toFixed(1).padStart(16)} ${j.toFixed(1).padStart(20)} ${`+${(j - b).toFixed(1)}`.padStart(10)} ${(j / b).toFixed(2).padStart(7)}x`)
    }
  } finally {
    yield* Effect.promise(() => rm(dir, { recursive: true, force: true }))
  }
})

Effect.runPromise(main).catch((e) => {
  console.error(e)
  process.exit(1)
})
