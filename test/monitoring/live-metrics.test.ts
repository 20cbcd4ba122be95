import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { exitWithin, killAll, LISTENING, spawnBin, waitForOutput } from "../e2e/node-process.js"
import { sampleNamesOf } from "./exported-metrics.js"
import { knownMetrics } from "./metric-check.js"

// The scan of src/ (exported-metrics.ts) against a real `--layer all` node: every family the
// node serves on /metrics is one the scan found, so the dashboards' check, which trusts the
// scan, misses nothing a node exports. (The other way round cannot hold: a node lists a
// failure counter only once it has counted something, see exported-metrics.ts.)

const START_MS = 120_000
const STOP_MS = 30_000
let scratch = ""
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "prolo-live-metrics-"))
  // As root the embedded PostgreSQL runs as `postgres`, which must reach its data directory.
  await chmod(scratch, 0o755)
})
afterEach(killAll)
afterAll(() => rm(scratch, { recursive: true, force: true }))

describe("a --layer all node's /metrics", () => {
  it(
    "serves only families the scan of src/ knows",
    async () => {
      const data = path.join(scratch, "data")
      await mkdir(data, { mode: 0o755 })
      const node = spawnBin("prolo-node", ["--layer", "all", "--config", "etc/prologin", "--listen", "127.0.17.1:0"], { PROLO_DATA_DIR: data })
      const [, url = ""] = await waitForOutput(node, LISTENING, START_MS)
      const text = await (await fetch(`${url}/metrics`)).text()
      node.child.kill("SIGTERM")
      expect(await exitWithin(node, STOP_MS), node.stderr).toBe(0)

      const samples = new Set(sampleNamesOf(text))
      expect(samples.size).toBeGreaterThan(20)
      const { exported } = await knownMetrics()
      expect([...samples].filter((s) => !exported.has(s))).toEqual([])
      // Families of each library and of several subsystems are there, so the check saw them.
      for (const name of ["process_cpu_user_seconds_total", "prolo_presence_logged_users", "prolo_presenced_last_ok_seconds", "prolo_sync_staleness_seconds", "prolo_sync_subscriptions_total", "effect_fiber_started_total"]) {
        expect(samples.has(name), name).toBe(true)
      }
    },
    START_MS + STOP_MS + 10_000
  )
})
