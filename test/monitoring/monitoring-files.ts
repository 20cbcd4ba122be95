import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { parse } from "yaml"
import { runTool, type ToolResult } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"

// The monitoring files of etc/ as the tests read them.

export const prometheusDir = path.join(checkout, "etc/prometheus")
export const grafanaDir = path.join(checkout, "etc/grafana")

export const promtool = (...args: ReadonlyArray<string>): Promise<ToolResult> => Effect.runPromise(runTool(["promtool", ...args]))

const filesIn = (dir: string, suffix: string): ReadonlyArray<string> =>
  fs.readdirSync(dir).filter((f) => f.endsWith(suffix)).sort().map((f) => path.join(dir, f))

export const ruleFiles = (): ReadonlyArray<string> => filesIn(path.join(prometheusDir, "rules"), ".rules.yml")
export const ruleTestFiles = (): ReadonlyArray<string> => filesIn(path.join(prometheusDir, "tests"), ".test.yml")
export const dashboardFiles = (): ReadonlyArray<string> => filesIn(path.join(grafanaDir, "dashboards"), ".json")

export interface AlertRule {
  readonly alert: string
  readonly expr: string
  readonly file: string
}

interface RuleFile {
  readonly groups: ReadonlyArray<{ readonly rules: ReadonlyArray<{ readonly alert?: string; readonly record?: string; readonly expr: string }> }>
}

export const alertRules = (): ReadonlyArray<AlertRule> =>
  ruleFiles().flatMap((file) =>
    (parse(fs.readFileSync(file, "utf8")) as RuleFile).groups.flatMap((g) =>
      g.rules.flatMap((r) => (r.alert === undefined ? [] : [{ alert: r.alert, expr: r.expr, file: path.basename(file) }]))
    )
  )

export interface AlertCase {
  readonly alertname: string
  readonly fires: boolean
  readonly test: string
}

interface RuleTestFile {
  readonly tests: ReadonlyArray<{ readonly name?: string; readonly alert_rule_test?: ReadonlyArray<{ readonly alertname: string; readonly exp_alerts?: ReadonlyArray<unknown> }> }>
}

/** Every alert_rule_test case of the promtool test files: which alert, firing or quiet. */
export const alertCases = (): ReadonlyArray<AlertCase> =>
  ruleTestFiles().flatMap((file) =>
    (parse(fs.readFileSync(file, "utf8")) as RuleTestFile).tests.flatMap((t) =>
      (t.alert_rule_test ?? []).map((c) => ({ alertname: c.alertname, fires: (c.exp_alerts ?? []).length > 0, test: t.name ?? path.basename(file) }))
    )
  )

interface Panel {
  readonly title?: string
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
  readonly panels?: ReadonlyArray<Panel>
}

export interface PanelQuery {
  readonly dashboard: string
  readonly panel: string
  readonly expr: string
}

const queriesOf = (dashboard: string, panels: ReadonlyArray<Panel>): ReadonlyArray<PanelQuery> =>
  panels.flatMap((p) => [
    ...(p.targets ?? []).flatMap((t) => (t.expr === undefined ? [] : [{ dashboard, panel: p.title ?? "?", expr: t.expr }])),
    ...queriesOf(dashboard, p.panels ?? [])
  ])

/** Every panel query of one dashboard JSON (rows' nested panels included). */
export const dashboardQueries = (file: string, json: unknown = JSON.parse(fs.readFileSync(file, "utf8"))): ReadonlyArray<PanelQuery> =>
  queriesOf(path.basename(file), (json as { panels?: ReadonlyArray<Panel> }).panels ?? [])
