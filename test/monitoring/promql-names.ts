// The metric names a PromQL expression reads. A small tokenizer, enough for the queries of our
// rules and dashboards: strings, label matchers `{...}`, ranges `[...]`, grouping clauses
// (`by (...)`, `on (...)`, ...), Grafana variables (`$__rate_interval`, `${x}`) and
// template text go; what stays is identifiers, and an identifier not followed by `(` that is not
// a keyword is a metric name.

const keywords = new Set([
  "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
  "inf", "nan", "atan2"
])
const groupings = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g

export const metricNames = (expr: string): ReadonlyArray<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\$\{[^}]*\}|\$\w+/g, " ")
    .replace(groupings, " ")
  const names = new Set<string>()
  const token = /(\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*)|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/gi
  for (const m of stripped.matchAll(token)) {
    const [, number, ident, call] = m
    if (number !== undefined || ident === undefined || call !== undefined) continue
    if (keywords.has(ident.toLowerCase())) continue
    names.add(ident)
  }
  return [...names]
}
