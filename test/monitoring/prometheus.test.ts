import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parse } from "yaml"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEFAULT_LEASE_SECONDS } from "../../src/actors/presence/service.js"
import { roleNames } from "../../src/roles.js"
import { lastSetting, roleSettings } from "../install/install-files.js"
import { knownMetrics, unknownNames, type Known } from "./metric-check.js"
import { alertCases, alertRules, prometheusDir, promtool, ruleFiles, ruleTestFiles } from "./monitoring-files.js"

// etc/prometheus: the scrape configuration and the alert rules pass promtool's checks, and
// every alert is proved by `promtool test rules` to fire on a synthetic series and to stay
// quiet on a healthy one.

let known: Known
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-prom-"))
beforeAll(async () => {
  known = await knownMetrics()
})
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

describe("etc/prometheus", () => {
  it("promtool check config passes on prometheus.yml, its rule files included", async () => {
    const result = await promtool("check", "config", path.join(prometheusDir, "prometheus.yml"))
    expect(result.output).toContain("SUCCESS")
    expect(result.output).toMatch(/SUCCESS: \d+ rule files found/)
    expect(result.code).toBe(0)
  })

  it("promtool check rules passes on every rule file", async () => {
    expect(ruleFiles().length).toBeGreaterThanOrEqual(2)
    const result = await promtool("check", "rules", ...ruleFiles())
    expect(result.output).not.toContain("FAILED")
    expect(result.code).toBe(0)
  })

  it("promtool test rules: every expectation holds", async () => {
    const result = await promtool("test", "rules", ...ruleTestFiles())
    expect(result.output).not.toContain("FAILED")
    expect(result.code).toBe(0)
  })

  it("every alert has a case where it fires and a case where it stays quiet", () => {
    const cases = alertCases()
    const alerts = alertRules().map((r) => r.alert)
    expect(new Set(alerts).size).toBe(alerts.length)
    const missing = alerts.flatMap((alert) => [
      ...(cases.some((c) => c.alertname === alert && c.fires) ? [] : [`${alert}: no case where it fires`]),
      ...(cases.some((c) => c.alertname === alert && !c.fires) ? [] : [`${alert}: no case where it stays quiet`])
    ])
    expect(missing).toEqual([])
    // And no case tests an alert that no longer exists.
    expect(cases.filter((c) => !alerts.includes(c.alertname)).map((c) => c.alertname)).toEqual([])
  })

  it("a wrong expectation fails promtool test rules (the tests above can fail)", async () => {
    const file = path.join(scratch, "wrong.test.yml")
    fs.writeFileSync(
      file,
      [
        `rule_files: [${JSON.stringify(path.join(prometheusDir, "rules/prolo.rules.yml"))}]`,
        "evaluation_interval: 1m",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
        `      - { series: 'up{job="prolo-gw",instance="gw:20000"}', values: '1 0 0 0 0' }`,
        "    alert_rule_test:",
        "      - { eval_time: 4m, alertname: ProloNodeDown, exp_alerts: [] }",
        ""
      ].join("\n")
    )
    const result = await promtool("test", "rules", file)
    expect(result.output).toContain("ProloNodeDown")
    expect(result.code).not.toBe(0)
  })

  it("every metric the rules read is exported by prolo (or pending), node_* by the node exporter", () => {
    const exprs = alertRules().map((r) => ({ expr: r.expr, where: `${r.file} ${r.alert}` }))
    expect(unknownNames(known, exprs, (name) => name.startsWith("node_"))).toEqual([])
  })

  it("scrapes every machine role as its own job, on the port the unit listens on", () => {
    const config = parse(fs.readFileSync(path.join(prometheusDir, "prometheus.yml"), "utf8")) as {
      scrape_configs: ReadonlyArray<{ job_name: string; static_configs?: ReadonlyArray<{ targets: ReadonlyArray<string> }>; file_sd_configs?: ReadonlyArray<{ files: ReadonlyArray<string> }> }>
    }
    // Each role's port: the template's, or its drop-in's own ExecStart (the worker's).
    const portOf = (role: string) => /--listen \S+:(\d+)/.exec(lastSetting(roleSettings(role), "ExecStart") ?? "")?.[1]
    expect(portOf("gw")).toBe("20000")
    for (const role of roleNames) {
      const port = portOf(role)
      expect(port, role).toMatch(/^\d+$/)
      const job = config.scrape_configs.find((j) => j.job_name === `prolo-${role}`)
      expect(job, role).toBeDefined()
      const fromFiles = (job?.file_sd_configs ?? []).flatMap((sd) =>
        sd.files.flatMap((f) => (parse(fs.readFileSync(path.join(prometheusDir, f), "utf8")) as ReadonlyArray<{ targets: ReadonlyArray<string> }>).flatMap((g) => g.targets))
      )
      const targets = [...(job?.static_configs ?? []).flatMap((c) => c.targets), ...fromFiles]
      expect(targets.length, role).toBeGreaterThan(0)
      for (const t of targets) expect(t, role).toMatch(new RegExp(`:${port}$`))
    }
  })

  it("PresenceHeartbeatsLate's threshold is 0.6 of presence's default lease", () => {
    const rule = alertRules().find((r) => r.alert === "PresenceHeartbeatsLate")
    expect(Number(/\) > ([0-9.]+)$/.exec(rule?.expr ?? "")?.[1])).toBe(0.6 * DEFAULT_LEASE_SECONDS)
  })

  it("etc/prometheus/README.md describes every alert", () => {
    const readme = fs.readFileSync(path.join(prometheusDir, "README.md"), "utf8")
    expect(alertRules().filter((r) => !new RegExp(`\\b${r.alert}\\b`).test(readme)).map((r) => r.alert)).toEqual([])
  })
})
