// The memory half of `npm run bench:nbd`: resident memory of our NBD server and of
// nbdkit's file plugin, idle / peak / after, for the same workloads, in interleaved rounds:
//
// - copy: nbdcopy writes the 1 GiB random image into the export, then reads it all back
//   (nbdcopy's default: 4 connections when the server offers multi-conn, as both do);
// - random: 50 clients (bench/nbd-random-clients.py, libnbd) each doing 2000 random 4 KiB
//   READs and WRITEs, 16 in flight, all at once.
//
// idle: RSS 2 s after the server answers; peak: highest RSS sampled every 20 ms during the
// workload; after: RSS AFTER_S seconds after the workload ended (our server gives memory
// back after 10 s without traffic). RSS is the server process's VmRSS (both are one process).
import * as fs from "node:fs"
import * as path from "node:path"
import { processRssKiB as rssKiB, startNbdServer } from "./nbd-peer.js"
import { benchLog, median, run, sleep } from "./support.js"

const log = benchLog("nbd memory")

export interface MemoryServer {
  readonly name: string
  readonly exportName: string
  // Shell command line, exec'd so that its pid is the server's.
  readonly command: (port: number, img: string) => string
}

export interface MemoryFigures {
  readonly idleMiB: number
  readonly peakMiB: number
  readonly afterMiB: number
  readonly seconds: number
}

const runQuiet = (cmd: string, args: ReadonlyArray<string>) => run(cmd, args, "ignore")

// Runs `work` while sampling the server's RSS; returns the peak in KiB and the seconds taken.
const sampled = async (pid: number, work: () => Promise<void>): Promise<{ peak: number; seconds: number }> => {
  let peak = rssKiB(pid)
  let running = true
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, rssKiB(pid))
      await sleep(20)
    }
  })()
  const t0 = process.hrtime.bigint()
  try {
    await work()
  } finally {
    running = false
    await sampler
  }
  return { peak: Math.max(peak, rssKiB(pid)), seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}

const copyWorkload = (uri: string, src: string) => async () => {
  if ((await runQuiet("nbdcopy", [src, uri])) !== 0) throw new Error(`nbdcopy ${src} ${uri} failed`)
  if ((await runQuiet("nbdcopy", [uri, "null:"])) !== 0) throw new Error(`nbdcopy ${uri} null: failed`)
}

const randomWorkload = (uri: string, driver: string, clients: number, seed: number) => async () => {
  const codes = await Promise.all(
    Array.from({ length: clients }, (_, i) => runQuiet("python3", [driver, uri, "2000", "16", String(seed + i)]))
  )
  const failed = codes.filter((c) => c !== 0).length
  if (failed > 0) throw new Error(`${failed} of ${clients} random I/O clients failed`)
}

export interface MemoryBenchOptions {
  readonly port: () => Promise<number>
  readonly image: string
  readonly src: string
  readonly driver: string
  readonly afterSeconds: number
  readonly seed: number
}

// One server, one workload: start, idle, run, wait, stop.
const measure = async (
  server: MemoryServer,
  opts: MemoryBenchOptions,
  workload: "copy" | "random"
): Promise<MemoryFigures> => {
  const port = await opts.port()
  const running = await startNbdServer(server.command(port, opts.image), port, server.exportName)
  const { pid, uri } = running
  try {
    await sleep(2000)
    const idle = rssKiB(pid)
    const work = workload === "copy" ? copyWorkload(uri, opts.src) : randomWorkload(uri, opts.driver, 50, opts.seed)
    const { peak, seconds } = await sampled(pid, work)
    await sleep(opts.afterSeconds * 1000)
    const after = rssKiB(pid)
    log(`${server.name} ${workload}: idle ${(idle / 1024).toFixed(1)} / peak ${(peak / 1024).toFixed(1)} / after ${(after / 1024).toFixed(1)} MiB, ${seconds.toFixed(2)} s`)
    return { idleMiB: idle / 1024, peakMiB: peak / 1024, afterMiB: after / 1024, seconds }
  } finally {
    await running.stop()
  }
}

type Results = Map<string, Map<string, Array<MemoryFigures>>>

export const runMemoryBench = async (servers: ReadonlyArray<MemoryServer>, opts: MemoryBenchOptions, rounds: number): Promise<Results> => {
  if (!fs.existsSync(opts.driver)) throw new Error(`random I/O driver not found: ${opts.driver}`)
  const results: Results = new Map()
  for (let round = 1; round <= rounds; round++)
    for (const workload of ["copy", "random"] as const)
      for (const s of servers) {
        const f = await measure(s, opts, workload)
        const byWorkload = results.get(s.name) ?? new Map<string, Array<MemoryFigures>>()
        results.set(s.name, byWorkload)
        byWorkload.set(workload, [...(byWorkload.get(workload) ?? []), f])
      }
  return results
}

// Markdown table (medians over rounds) and the verdict on the goal: our growth over idle
// (peak - idle) at most nbdkit's peak.
export const memoryReport = (results: Results, ours: string, peer: string, afterSeconds: number): { text: string; verdicts: Array<string> } => {
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "-")
  const lines = [
    `| workload | ours idle / peak / after (MiB) | nbdkit idle / peak / after (MiB) | our growth (peak − idle) vs nbdkit peak | time ours / nbdkit (s) |`,
    "|---|---|---|---|---|"
  ]
  const verdicts: Array<string> = []
  for (const [workload, label] of [
    ["copy", "1 GiB copy in + out (nbdcopy, default conns)"],
    ["random", "50 clients × 2000 random 4 KiB I/O"]
  ] as const) {
    const a = results.get(ours)?.get(workload) ?? []
    const b = results.get(peer)?.get(workload) ?? []
    const m = (xs: ReadonlyArray<MemoryFigures>, k: keyof MemoryFigures) => median(xs.map((x) => x[k]))
    const growth = m(a, "peakMiB") - m(a, "idleMiB")
    const kitPeak = m(b, "peakMiB")
    lines.push(
      `| ${label} | ${f(m(a, "idleMiB"))} / ${f(m(a, "peakMiB"))} / ${f(m(a, "afterMiB"))} | ${f(m(b, "idleMiB"))} / ${f(kitPeak)} / ${f(m(b, "afterMiB"))} | ${f(growth)} vs ${f(kitPeak)} | ${m(a, "seconds").toFixed(2)} / ${m(b, "seconds").toFixed(2)} |`
    )
    if (!(growth <= kitPeak)) verdicts.push(`below goal: ${workload}: our RSS grows ${f(growth)} MiB over idle, nbdkit's peak is ${f(kitPeak)} MiB`)
  }
  const rounds = Math.max(...[...results.values()].flatMap((w) => [...w.values()].map((xs) => xs.length)))
  return {
    text: `\n## NBD server memory: ours vs nbdkit (RSS, median of ${rounds} interleaved round(s); after = ${afterSeconds} s after the load)\n\n${lines.join("\n")}\n`,
    verdicts
  }
}

export const randomDriver = (root: string) => path.join(root, "bench", "nbd-random-clients.py")
