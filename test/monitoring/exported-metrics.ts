import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Metric } from "effect"
import * as Prom from "prom-client"
import ts from "typescript"
import { renderEffectMetrics } from "../../src/runtime/metrics-effect.js"

// The metric names prolo exports, read from the code: every metric constructor in src/
// (prom-client's `new Prom.Counter|Gauge|Histogram|Summary({ name })`, our `promCounter({ name })`,
// Effect's `Metric.counter|gauge|histogram|summary|frequency(name)`), expanded to the sample
// names each kind writes, plus the libraries' own: prom-client's default process metrics as
// `Metrics.layer` registers them, and Effect's runtime metrics (`Metric.fiber*`, which a node's
// runtime counts), rendered by our own renderer.
//
// Why the code and not a running node's /metrics: a node lists an Effect metric only after
// its first update and a labelled prom-client family only after its first labelled sample,
// and a `--layer all` node does not run every role's code paths (no RHFS migration, no worker).
// Failure counters — the ones alerts and dashboards are about — are exactly those that stay
// absent on a healthy node. Constructors are found through each file's imports (any alias of
// prom-client, of Effect's `Metric`, of `promCounter`); a name passed through a function of the
// same file (`counter(registry, "x_total", help)`) is read at that function's call sites; any
// other name that is not a string literal (or a const holding one) is reported in `unreadable`,
// so a metric cannot slip past the scan.
// live-node.test.ts checks the scan against a real `--layer all` node: everything it serves
// is known here.

export type MetricKind = "counter" | "gauge" | "histogram" | "summary"

export interface ExportedMetric {
  readonly name: string
  readonly kind: MetricKind
  /** Effect metrics are rendered by src/runtime/metrics-effect.ts, prom-client's by prom-client. */
  readonly library: "effect" | "prom-client"
  readonly file: string
}

export interface Scan {
  readonly metrics: ReadonlyArray<ExportedMetric>
  /** `file:line` of constructors whose name the scan could not read. */
  readonly unreadable: ReadonlyArray<string>
}

const promKinds: Record<string, MetricKind> = { Counter: "counter", Gauge: "gauge", Histogram: "histogram", Summary: "summary" }
const effectKinds: Record<string, MetricKind> = {
  counter: "counter",
  frequency: "counter",
  gauge: "gauge",
  histogram: "histogram",
  summary: "summary"
}

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [full] : []
  })

/** `const NAME = "literal"` declarations of one file. */
const stringConsts = (file: ts.SourceFile): ReadonlyMap<string, string> => {
  const consts = new Map<string, string>()
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer !== undefined && ts.isStringLiteralLike(node.initializer)) {
      consts.set(node.name.text, node.initializer.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return consts
}

/** A function whose parameter (or its `.name`) becomes a metric's name: its call sites carry the names. */
interface Wrapper {
  readonly fn: string
  readonly index: number
  readonly property: "name" | undefined
}

type NameSource = { readonly literal: string } | { readonly wrapper: Wrapper } | undefined

/** The named function (`const f = (...) =>` or `function f`) of which `ident` is the parameter at `index`. */
const parameterOf = (node: ts.Node, ident: string): { readonly fn: string; readonly index: number } | undefined => {
  for (let n: ts.Node | undefined = node.parent; n !== undefined; n = n.parent) {
    if (!ts.isArrowFunction(n) && !ts.isFunctionExpression(n) && !ts.isFunctionDeclaration(n)) continue
    const index = n.parameters.findIndex((p) => ts.isIdentifier(p.name) && p.name.text === ident)
    if (index < 0) continue
    const fn = ts.isFunctionDeclaration(n)
      ? n.name?.text
      : ts.isVariableDeclaration(n.parent) && ts.isIdentifier(n.parent.name)
        ? n.parent.name.text
        : undefined
    return fn === undefined ? undefined : { fn, index }
  }
  return undefined
}

/** Where a metric's name comes from: a literal, a const holding one, or a wrapper's parameter. */
const sourceOf = (expr: ts.Expression | undefined, consts: ReadonlyMap<string, string>): NameSource => {
  if (expr === undefined) return undefined
  if (ts.isStringLiteralLike(expr)) return { literal: expr.text }
  if (ts.isIdentifier(expr)) {
    const value = consts.get(expr.text)
    if (value !== undefined) return { literal: value }
    const param = parameterOf(expr, expr.text)
    return param === undefined ? undefined : { wrapper: { ...param, property: undefined } }
  }
  if (ts.isPropertyAccessExpression(expr) && ts.isIdentifier(expr.expression) && expr.name.text === "name") {
    const param = parameterOf(expr, expr.expression.text)
    return param === undefined ? undefined : { wrapper: { ...param, property: "name" } }
  }
  return undefined
}

/** The expression of the `name` property of an options object (`{ name: x }` or `{ name }`). */
const nameOf = (node: ts.Expression | undefined): ts.Expression | undefined => {
  if (node === undefined || !ts.isObjectLiteralExpression(node)) return undefined
  for (const prop of node.properties) {
    if (ts.isPropertyAssignment(prop) && ts.isIdentifier(prop.name) && prop.name.text === "name") return prop.initializer
    if (ts.isShorthandPropertyAssignment(prop) && prop.name.text === "name") return prop.name
  }
  return undefined
}

/** What one file's imports call the metric constructors. */
interface Bindings {
  /** `import * as X from "prom-client"` or its default import: `new X.Counter(...)`. */
  readonly promModules: ReadonlySet<string>
  /** `import { Counter as C } from "prom-client"`: `new C(...)`. */
  readonly promClasses: ReadonlyMap<string, MetricKind>
  /** `import { Metric as M } from "effect"`, `import * as M from "effect/Metric"`: `M.counter(...)`. */
  readonly effectModules: ReadonlySet<string>
  /** `import { counter as c } from "effect/Metric"`: `c(...)`. */
  readonly effectFunctions: ReadonlyMap<string, MetricKind>
  /** `promCounter` (src/runtime/metrics.ts) under its local name, in every other file. */
  readonly promCounters: ReadonlySet<string>
}

const bindingsOf = (file: ts.SourceFile): Bindings => {
  const promModules = new Set<string>()
  const promClasses = new Map<string, MetricKind>()
  const effectModules = new Set<string>()
  const effectFunctions = new Map<string, MetricKind>()
  const promCounters = new Set<string>()
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue
    const from = statement.moduleSpecifier.text
    const clause = statement.importClause
    if (clause === undefined) continue
    const named = clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings.elements : []
    const namespace = clause.namedBindings !== undefined && ts.isNamespaceImport(clause.namedBindings) ? clause.namedBindings.name.text : undefined
    const imported = (e: ts.ImportSpecifier) => (e.propertyName ?? e.name).text
    if (from === "prom-client") {
      if (namespace !== undefined) promModules.add(namespace)
      if (clause.name !== undefined) promModules.add(clause.name.text)
      for (const e of named) {
        const kind = promKinds[imported(e)]
        if (kind !== undefined) promClasses.set(e.name.text, kind)
      }
    } else if (from === "effect") {
      for (const e of named) if (imported(e) === "Metric") effectModules.add(e.name.text)
    } else if (from === "effect/Metric") {
      if (namespace !== undefined) effectModules.add(namespace)
      for (const e of named) {
        const kind = effectKinds[imported(e)]
        if (kind !== undefined) effectFunctions.set(e.name.text, kind)
      }
    } else if (path.resolve(path.dirname(file.fileName), from).endsWith(path.join(path.sep, "runtime", "metrics.js"))) {
      for (const e of named) if (imported(e) === "promCounter") promCounters.add(e.name.text)
    }
  }
  return { promModules, promClasses, effectModules, effectFunctions, promCounters }
}

/** The kind `new <callee>(...)` constructs, when it is a prom-client metric class. */
const promKind = (callee: ts.Expression, b: Bindings): MetricKind | undefined => {
  if (ts.isIdentifier(callee)) return b.promClasses.get(callee.text)
  if (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && b.promModules.has(callee.expression.text)) {
    return promKinds[callee.name.text]
  }
  return undefined
}

/** The kind `<callee>(...)` creates, when it is one of Effect's metric constructors. */
const effectKind = (callee: ts.Expression, b: Bindings): MetricKind | undefined => {
  if (ts.isIdentifier(callee)) return b.effectFunctions.get(callee.text)
  if (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && b.effectModules.has(callee.expression.text)) {
    return effectKinds[callee.name.text]
  }
  return undefined
}

export const scanMetrics = (srcDir: string): Scan => {
  const metrics: Array<ExportedMetric> = []
  const unreadable: Array<string> = []
  for (const fileName of sourceFiles(srcDir)) {
    const text = fs.readFileSync(fileName, "utf8")
    const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true)
    const consts = stringConsts(file)
    const rel = path.relative(srcDir, fileName)
    const where = (node: ts.Node) => `${rel}:${file.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
    // Wrappers of this file (e.g. `const counter = (registry, name, help) => new Prom.Counter({ name, ... })`).
    const wrappers = new Map<string, Wrapper & { readonly kind: MetricKind; readonly library: ExportedMetric["library"] }>()
    const add = (node: ts.Node, source: NameSource, kind: MetricKind, library: ExportedMetric["library"]): void => {
      if (source === undefined) unreadable.push(where(node))
      else if ("literal" in source) metrics.push({ name: source.literal, kind, library, file: rel })
      else wrappers.set(source.wrapper.fn, { ...source.wrapper, kind, library })
    }
    const bindings = bindingsOf(file)
    const visit = (node: ts.Node): void => {
      if (ts.isNewExpression(node)) {
        const kind = promKind(node.expression, bindings)
        if (kind !== undefined) add(node, sourceOf(nameOf(node.arguments?.[0]), consts), kind, "prom-client")
      } else if (ts.isCallExpression(node)) {
        const callee = node.expression
        const kind = effectKind(callee, bindings)
        if (ts.isIdentifier(callee) && bindings.promCounters.has(callee.text)) {
          add(node, sourceOf(nameOf(node.arguments[0]), consts), "counter", "prom-client")
        } else if (kind !== undefined) {
          const first = node.arguments[0]
          add(node, sourceOf(kind === "summary" ? nameOf(first) : first, consts), kind, "effect")
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(file)
    // The wrappers' call sites, until no new wrapper (one that passes its own parameter on) appears.
    const done = new Set<string>()
    for (let round = 0; round <= wrappers.size && done.size < wrappers.size; round++) {
      for (const wrapper of [...wrappers.values()].filter((w) => !done.has(w.fn))) {
        done.add(wrapper.fn)
        const calls = (node: ts.Node): void => {
          if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === wrapper.fn) {
            const arg = node.arguments[wrapper.index]
            add(node, sourceOf(wrapper.property === "name" ? nameOf(arg) : arg, consts), wrapper.kind, wrapper.library)
          }
          ts.forEachChild(node, calls)
        }
        calls(file)
      }
    }
  }
  return { metrics, unreadable }
}

/**
 * The sample names one metric writes on /metrics. Effect counters get `_total` appended when
 * missing (src/runtime/metrics-effect.ts); prom-client keeps the name as given.
 */
export const samplesOf = (metric: ExportedMetric): ReadonlyArray<string> => {
  const base = metric.library === "effect" && metric.kind === "counter" && !metric.name.endsWith("_total") ? `${metric.name}_total` : metric.name
  switch (metric.kind) {
    case "counter":
    case "gauge":
      return [base]
    case "histogram":
      return [base, `${base}_bucket`, `${base}_sum`, `${base}_count`]
    case "summary":
      return [base, `${base}_sum`, `${base}_count`]
  }
}

/** Sample names of prom-client's default metrics, as a fresh registry collects them. */
export const defaultProcessSamples = async (): Promise<ReadonlyArray<string>> => {
  const registry = new Prom.Registry()
  Prom.collectDefaultMetrics({ register: registry })
  const json = await registry.getMetricsAsJSON()
  registry.clear()
  return json.flatMap((m) => {
    const kind = m.type as unknown as string
    const asKind: MetricKind = kind === "histogram" ? "histogram" : kind === "summary" ? "summary" : "gauge"
    return samplesOf({ name: m.name, kind: asKind, library: "prom-client", file: "prom-client" })
  })
}

/** Sample names of Effect's runtime metrics (`Metric.fiberStarted`, ...), as /metrics renders them. */
export const effectRuntimeSamples = (): ReadonlyArray<string> => {
  const builtIns = Object.entries(Metric).flatMap(([key, value]) =>
    key.startsWith("fiber") && typeof value === "function" && Metric.MetricTypeId in value
      ? [value as unknown as Metric.Metric<unknown, never, unknown>]
      : []
  )
  // Reading a metric registers it in the snapshot; its pairs are those of its key type (one
  // object per metric, shared by its tagged variants).
  for (const metric of builtIns) Effect.runSync(Metric.value(metric))
  const pairs = Effect.runSync(Metric.snapshot).filter((p) => builtIns.some((m) => m.keyType === p.metricKey.keyType))
  return [...new Set(sampleNamesOf(renderEffectMetrics(pairs, new Set()).text))]
}

/** The sample names of a Prometheus text exposition. */
export const sampleNamesOf = (text: string): ReadonlyArray<string> =>
  text.split("\n").flatMap((line) => (line === "" || line.startsWith("#") ? [] : [/^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0] ?? line]))

/** Every sample name a prolo node may write on /metrics. */
export const exportedSamples = async (srcDir: string): Promise<{ readonly names: ReadonlySet<string>; readonly scan: Scan }> => {
  const scan = scanMetrics(srcDir)
  const names = new Set<string>([...(await defaultProcessSamples()), ...effectRuntimeSamples()])
  for (const metric of scan.metrics) for (const sample of samplesOf(metric)) names.add(sample)
  return { names, scan }
}
