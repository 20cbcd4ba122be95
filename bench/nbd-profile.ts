// Self-time summary of V8 CPU profiles (`node --cpu-prof`): which functions and which
// files the samples landed in, idle time excluded, so a throughput gap can be pinned on
// the protocol layer, the backend, Node's streams or the GC.
import * as fs from "node:fs"
import * as path from "node:path"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples?: ReadonlyArray<number>
  readonly timeDeltas?: ReadonlyArray<number>
}

const listProfiles = (dir: string): Array<string> =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name)
        return e.isDirectory() ? listProfiles(p) : e.name.endsWith(".cpuprofile") ? [p] : []
      })
    : []

const shortUrl = (url: string): string => {
  if (url === "") return "(native/vm)"
  const nm = url.lastIndexOf("node_modules/")
  if (nm >= 0) return url.slice(nm + "node_modules/".length)
  const src = url.search(/\/(src|bench|bin)\//)
  return src >= 0 ? url.slice(src + 1) : url.replace(/^file:\/\//, "")
}

const table = (title: string, m: ReadonlyMap<string, number>, total: number, top: number): string => {
  const rows = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  return [
    `| ${title} | self ms | % of busy |`,
    "|---|---|---|",
    ...rows.map(([k, us]) => `| ${k.replaceAll("|", "\\|")} | ${(us / 1000).toFixed(0)} | ${((100 * us) / total).toFixed(1)} |`)
  ].join("\n")
}

// Samples before the first one with one of our NBD frames on its stack are start-up
// (module loading under tsx) and are left out; `inclusive` counts, per project file,
// the samples with that file anywhere on the stack (protocol layer vs backend).
export const summarizeProfiles = (dir: string, top = 20): string => {
  const files = listProfiles(dir)
  if (files.length === 0) return `(no .cpuprofile under ${dir}: did the server exit cleanly on SIGTERM?)`
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let busy = 0
  let idle = 0
  let startup = 0
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, "utf8")) as Profile
    const nodes = new Map(prof.nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    const stackFiles = (id: number): Set<string> => {
      const seen = new Set<string>()
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const url = nodes.get(cur)?.callFrame.url ?? ""
        if (/\/(src|bench)\//.test(url)) seen.add(shortUrl(url))
      }
      return seen
    }
    const samples = prof.samples ?? []
    const deltas = prof.timeDeltas ?? []
    let started = false
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i] ?? -1
      const node = nodes.get(id)
      // A sample's delta is the time since the previous sample; attribute it to this one.
      const us = deltas[i + 1] ?? deltas[i] ?? 0
      if (node === undefined) continue
      const { functionName, url, lineNumber } = node.callFrame
      if (functionName === "(idle)") {
        idle += us
        continue
      }
      const ours = functionName === "(garbage collector)" || functionName === "(program)" ? new Set<string>() : stackFiles(id)
      if (!started) {
        if ([...ours].some((f) => f.startsWith("src/nbd/"))) started = true
        else {
          startup += us
          continue
        }
      }
      busy += us
      const where = shortUrl(url)
      const fn = `${functionName || "(anonymous)"} ${where}${url ? `:${lineNumber + 1}` : ""}`
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + us)
      byFile.set(where, (byFile.get(where) ?? 0) + us)
      for (const f of ours) inclusive.set(f, (inclusive.get(f) ?? 0) + us)
    }
  }
  return [
    `${files.length} profile(s); busy ${(busy / 1e6).toFixed(2)} s after start-up (start-up ${(startup / 1e6).toFixed(2)} s left out), idle ${(idle / 1e6).toFixed(2)} s`,
    "",
    table("file (self time)", byFile, busy, 12),
    "",
    table("project file (inclusive: on the stack)", inclusive, busy, 12),
    "",
    table("function (self time)", byFunction, busy, top)
  ].join("\n")
}

// `node --import tsx bench/nbd-profile.ts DIR` summarises an existing profile directory.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.stdout.write(summarizeProfiles(process.argv[2] ?? ".") + "\n")
}
