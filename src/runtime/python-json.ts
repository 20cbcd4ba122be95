// JSON text as Python's `json.dumps` writes it by default (separators ", " and ": ", every
// character outside printable ASCII escaped as \uXXXX): the original sync bus and prologin-RPC
// servers emitted exactly this, tokens signed these bytes and the Python clients compare them,
// so `/poll` lines and `/call/<method>` answers match the original byte for byte.

const ESCAPES: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" }

// Python's ensure_ascii escapes everything but ' '..'~' (so DEL, U+007F, too).
const pyString = (s: string): string =>
  `"${s.replace(/["\\\u0000-\u001f\u007f-\uffff]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`

export const pythonJson = (value: unknown): string => {
  if (value === null || value === undefined) return "null"
  switch (typeof value) {
    case "string":
      return pyString(value)
    case "number":
      return Number.isFinite(value) ? String(value) : value > 0 ? "Infinity" : value < 0 ? "-Infinity" : "NaN"
    case "boolean":
      return value ? "true" : "false"
    case "object":
      if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`
      return `{${Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${pyString(k)}: ${pythonJson(v)}`)
        .join(", ")}}`
    default:
      return "null"
  }
}
