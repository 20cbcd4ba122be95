// Parsing of `prolo nbd serve` arguments, kept apart from the command so that every
// bad input has a unit-tested, specific message.

export type ExportSource =
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Memory"; readonly size: number }

export interface ExportArg {
  readonly name: string
  readonly source: ExportSource
  readonly readOnly: boolean
}

export interface ListenArg {
  readonly host: string
  readonly port: number
}

// What `--export =FILE` is listed as (NBD_OPT_LIST) and can be asked for by name.
export const DEFAULT_EXPORT_NAME = "default"

const SIZE = /^([0-9]+)([KMGT]?)$/i
const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }

export const parseSize = (text: string): number | string => {
  const m = SIZE.exec(text)
  if (m === null) return `bad size ${JSON.stringify(text)} (expected e.g. 268435456, 256M, 2G)`
  const n = Number(m[1]) * (UNITS[(m[2] ?? "").toUpperCase()] ?? 1)
  if (!Number.isSafeInteger(n) || n <= 0) return `size ${JSON.stringify(text)} is out of range`
  return n
}

// NAME=FILE[,ro] or NAME=mem:SIZE[,ro]; an empty NAME (=FILE) is the default export,
// which serve registers as DEFAULT_EXPORT_NAME.
export const parseExportArg = (text: string): ExportArg | string => {
  const eq = text.indexOf("=")
  if (eq < 0) return `bad --export ${JSON.stringify(text)}: expected NAME=FILE[,ro], NAME=mem:SIZE[,ro] or =FILE (the default export)`
  const name = text.slice(0, eq)
  let rest = text.slice(eq + 1)
  let readOnly = false
  if (rest.endsWith(",ro")) {
    readOnly = true
    rest = rest.slice(0, -3)
  } else if (rest.endsWith(",rw")) rest = rest.slice(0, -3)
  if (rest.length === 0) return `bad --export ${JSON.stringify(text)}: no file given`
  if (rest.startsWith("mem:")) {
    const size = parseSize(rest.slice(4))
    if (typeof size === "string") return `bad --export ${JSON.stringify(text)}: ${size}`
    return { name, source: { _tag: "Memory", size }, readOnly }
  }
  return { name, source: { _tag: "File", path: rest }, readOnly }
}

// --memory-budget SIZE: below 1 MiB the server would run about one large request at a time.
export const MIN_MEMORY_BUDGET = 2 ** 20
export const parseMemoryBudget = (text: string): number | string => {
  const size = parseSize(text)
  if (typeof size === "string") return `bad --memory-budget: ${size}`
  if (size < MIN_MEMORY_BUDGET) return `bad --memory-budget ${JSON.stringify(text)}: at least 1M`
  return size
}

// HOST:PORT, [IPv6]:PORT or :PORT (all interfaces is never implied: HOST defaults to 127.0.0.1).
export const parseListen = (text: string): ListenArg | string => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text)
  if (m === null) return `bad --listen ${JSON.stringify(text)}: expected HOST:PORT`
  const port = Number(m[3])
  if (port > 65535) return `bad --listen ${JSON.stringify(text)}: port ${port} is out of range`
  const host = m[1] ?? (m[2] === undefined || m[2] === "" ? "127.0.0.1" : m[2])
  return { host, port }
}

// --dead-peer IDLE,INTERVAL,COUNT (seconds, seconds, probes): cut a dead client within
// IDLE + INTERVAL × COUNT seconds (tcp-dead-peer.ts).
export const parseDeadPeer = (text: string): { idleSeconds: number; intervalSeconds: number; count: number } | string => {
  const m = /^([0-9]{1,4}),([0-9]{1,3}),([0-9]{1,2})$/.exec(text)
  if (m === null) return `bad --dead-peer ${JSON.stringify(text)}: expected IDLE,INTERVAL,COUNT (e.g. 10,2,5)`
  const [idleSeconds, intervalSeconds, count] = [Number(m[1]), Number(m[2]), Number(m[3])]
  if (idleSeconds < 1 || intervalSeconds < 1 || count < 1) return `bad --dead-peer ${JSON.stringify(text)}: every figure is at least 1`
  return { idleSeconds, intervalSeconds, count }
}
