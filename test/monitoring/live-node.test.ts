import * as fs from "node:fs"
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises"
import { spawn } from "node:child_process"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { parse } from "yaml"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { exitWithin, killAll, LISTENING, spawnBin, spawnTracked, waitForOutput, type Spawned } from "../e2e/node-process.js"
import { sampleNamesOf } from "./exported-metrics.js"
import { knownMetrics } from "./metric-check.js"
import { prometheusDir, ruleFiles } from "./monitoring-files.js"

// A real `--layer all` node, then a real Prometheus with our scrape job and rule files:
// - the node's /metrics serves only names the scan of src/ knows (exported-metrics.ts), so the
//   dashboards' check, which trusts the scan, misses nothing a node exports (the other way round
//   cannot hold: a failure counter shows only once it has counted something);
// - Prometheus scrapes it, evaluates every rule on its real series without an error, and puts
//   ProloNodeDown in pending once the node is stopped.

const START_MS = 120_000
const STOP_MS = 30_000
const POLL_MS = 30_000
let scratch = ""
let node: Spawned
let url = ""

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "prolo-live-node-"))
  // As root the embedded PostgreSQL runs as `postgres`, which must reach its data directory.
  await chmod(scratch, 0o755)
  const data = path.join(scratch, "data")
  await mkdir(data, { mode: 0o755 })
  node = spawnBin("prolo-node", ["--layer", "all", "--config", "etc/prologin", "--listen", "127.0.17.1:0"], { PROLO_DATA_DIR: data })
  url = (await waitForOutput(node, LISTENING, START_MS))[1] ?? ""
}, START_MS + 10_000)
afterAll(async () => {
  await killAll()
  await rm(scratch, { recursive: true, force: true })
})

/** Polls `probe` until it returns a value (bounded: a real process we wait for). */
const until = async <A>(what: string, probe: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + POLL_MS
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`not within ${POLL_MS} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const api = async <A>(base: string, query: string): Promise<A> => ((await (await fetch(`${base}/api/v1/${query}`)).json()) as { data: A }).data

interface RuleGroup {
  readonly name: string
  readonly lastEvaluation: string
  readonly rules: ReadonlyArray<{ readonly name: string; readonly health: string; readonly lastError?: string }>
}

describe("a live --layer all node", () => {
  it("serves on /metrics only names the scan of src/ knows", async () => {
    const samples = new Set(sampleNamesOf(await (await fetch(`${url}/metrics`)).text()))
    expect(samples.size).toBeGreaterThan(20)
    const { exported } = await knownMetrics()
    expect([...samples].filter((s) => !exported.has(s))).toEqual([])
    // Families of each library and of several subsystems are there, so the check saw them.
    for (const name of ["process_cpu_user_seconds_total", "prolo_presence_logged_users", "prolo_presenced_last_ok_seconds", "prolo_sync_staleness_seconds", "prolo_sync_subscriptions_total", "effect_fiber_started_total"]) {
      expect(samples.has(name), name).toBe(true)
    }
  })

  it(
    "is scraped by Prometheus with our job, every rule evaluates on it without error, and ProloNodeDown goes pending when it stops",
    async () => {
      // Our prometheus.yml, with the gateway's job pointed at this node, 1 s intervals and the rule files by absolute path.
      const config = parse(fs.readFileSync(path.join(prometheusDir, "prometheus.yml"), "utf8")) as {
        global: Record<string, unknown>
        rule_files: ReadonlyArray<string>
        scrape_configs: ReadonlyArray<Record<string, unknown>>
      }
      const job = config.scrape_configs.find((j) => j.job_name === "prolo-gw")
      expect(job).toBeDefined()
      const target = new URL(url).host
      const live = {
        global: { ...config.global, scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: ruleFiles(),
        scrape_configs: [{ ...job, scrape_interval: "1s", static_configs: [{ targets: [target] }] }]
      }
      const file = path.join(scratch, "prometheus.yml")
      fs.writeFileSync(file, JSON.stringify(live))
      const prometheus = spawnTracked(
        spawn("prometheus", [`--config.file=${file}`, `--storage.tsdb.path=${path.join(scratch, "tsdb")}`, "--web.listen-address=127.0.17.2:0"], {
          stdio: ["ignore", "pipe", "pipe"]
        })
      )
      const address = (await waitForOutput(prometheus, /msg="Listening on" address=(\S+)/, POLL_MS))[1] ?? ""
      const base = `http://${address}`

      await until("up{job=\"prolo-gw\"} == 1", async () => {
        const result = await api<{ result: ReadonlyArray<{ value: [number, string] }> }>(base, `query?query=${encodeURIComponent('up{job="prolo-gw"}')}`)
        return result.result[0]?.value[1] === "1" ? true : undefined
      })
      // Two evaluations after the first scrape: every rule ran on the node's real series.
      const since = Date.now()
      const groups = await until("every rule group evaluated", async () => {
        const { groups } = await api<{ groups: ReadonlyArray<RuleGroup> }>(base, "rules")
        return groups.length > 0 && groups.every((g) => Date.parse(g.lastEvaluation) > since + 1000) ? groups : undefined
      })
      const rules = groups.flatMap((g) => g.rules)
      expect(rules.length).toBeGreaterThan(20)
      expect(rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError ?? r.health}`)).toEqual([])

      node.child.kill("SIGTERM")
      expect(await exitWithin(node, STOP_MS), node.stderr).toBe(0)
      const alert = await until("ProloNodeDown pending", async () => {
        const { alerts } = await api<{ alerts: ReadonlyArray<{ labels: Record<string, string>; state: string }> }>(base, "alerts")
        return alerts.find((a) => a.labels.alertname === "ProloNodeDown")
      })
      expect(alert).toMatchObject({ state: "pending", labels: { job: "prolo-gw", instance: target, severity: "critical" } })

      prometheus.child.kill("SIGTERM")
      expect(await exitWithin(prometheus, STOP_MS)).toBe(0)
    },
    START_MS + POLL_MS * 4
  )
})
