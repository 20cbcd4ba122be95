// `npm run bench:nbd-interleave`: nbdcopy throughput of several NBD servers taking turns,
// for a loaded machine where back-to-back runs drift apart: every round starts each
// server once (the order rotates) and runs the same four copies against it; medians over
// rounds, ratios to nbdkit, and each server's own CPU seconds per GiB (utime + stime from
// /proc, less sensitive to other processes than wall time). Prints the load average.
//
// Servers: ours (the current prolo-nbd bundle), nbdkit's file plugin, and optionally
// NBD_BASELINE='CMD with @PORT@ and @IMG@' (e.g. an older build). ROUNDS [4];
// NBD_BENCH_DIR as bench:nbd (its images); NBD_OURS_FLAGS extra `nbd serve` flags;
// NBD_INTERLEAVE_ONLY=read-C1,write-default… picks workloads.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { nbdServeArgs } from "./nbd-bundle.js"
import { cpuSeconds, startNbdServer, timedNbdcopy } from "./nbd-peer.js"
import { benchLog, freePort, median } from "./support.js"

const work = process.env["NBD_BENCH_DIR"] ?? "/var/tmp/prolo-nbd-bench"
const rounds = Number(process.env["ROUNDS"] ?? "4")
const GiB = 2 ** 30
const log = benchLog("nbd-interleave")

interface Server {
  readonly name: string
  readonly exportName: string
  readonly command: (port: number, img: string) => string
}

const workloads: ReadonlyArray<{ readonly name: string; readonly args: (uri: string, src: string) => Array<string> }> = [
  { name: "read-C1", args: (uri) => ["--connections=1", uri, "null:"] },
  { name: "read-default", args: (uri) => [uri, "null:"] },
  { name: "write-C1", args: (uri, src) => ["--connections=1", src, uri] },
  { name: "write-default", args: (uri, src) => [src, uri] }
]

const main = async () => {
  const src = path.join(work, "src1g.img")
  const img = path.join(work, "data1g.img")
  if (!fs.existsSync(src) || !fs.existsSync(img)) throw new Error(`no images in ${work}: run bench:nbd once (it creates them)`)
  const ours = await nbdServeArgs()
  const flags = process.env["NBD_OURS_FLAGS"] ?? ""
  const servers: Array<Server> = [
    { name: "ours", exportName: "bench", command: (port, i) => `node ${ours} ${flags} --listen 127.0.0.1:${port} --export bench=${i}` },
    { name: "nbdkit", exportName: "", command: (port, i) => `nbdkit -f -i 127.0.0.1 -p ${port} file file=${i}` }
  ]
  const baseline = process.env["NBD_BASELINE"]
  if (baseline !== undefined)
    servers.push({ name: "baseline", exportName: "bench", command: (port, i) => baseline.replaceAll("@PORT@", String(port)).replaceAll("@IMG@", i) })
  const only = process.env["NBD_INTERLEAVE_ONLY"]?.split(",")
  const chosen = workloads.filter((w) => only === undefined || only.includes(w.name))
  const wall = new Map<string, Array<number>>()
  const cpu = new Map<string, Array<number>>()
  const load0 = os.loadavg()
  for (let round = 0; round < rounds; round++) {
    const order = servers.map((_, i) => servers[(i + round) % servers.length] as Server)
    for (const s of order) {
      const port = await freePort()
      const server = await startNbdServer(s.command(port, img), port, s.exportName).catch((err: unknown) => {
        throw new Error(`${s.name} did not start: ${err instanceof Error ? err.message : String(err)}`)
      })
      try {
        for (const w of chosen) {
          const c0 = cpuSeconds(server.pid)
          const seconds = await timedNbdcopy(w.args(server.uri, src)).catch((err: unknown) => {
            throw new Error(`${s.name} ${w.name}: ${err instanceof Error ? err.message : String(err)}`)
          })
          const used = cpuSeconds(server.pid) - c0
          const key = `${s.name}/${w.name}`
          wall.set(key, [...(wall.get(key) ?? []), seconds])
          cpu.set(key, [...(cpu.get(key) ?? []), used])
          log(`round ${round + 1} ${key}: ${seconds.toFixed(3)} s, server CPU ${used.toFixed(2)} s (load ${os.loadavg()[0]?.toFixed(1)})`)
        }
      } finally {
        await server.stop()
      }
    }
  }
  const names = servers.map((s) => s.name)
  const lines = [
    `| workload | ${names.map((n) => `${n} s/GiB (CPU s/GiB)`).join(" | ")} | ${names.filter((n) => n !== "nbdkit").map((n) => `${n}/nbdkit speed`).join(" | ")} |`,
    `|---|${names.map(() => "---|").join("")}${names.filter((n) => n !== "nbdkit").map(() => "---|").join("")}`
  ]
  for (const w of chosen) {
    const t = (n: string) => median(wall.get(`${n}/${w.name}`) ?? []) / (fs.statSync(src).size / GiB)
    const c = (n: string) => median(cpu.get(`${n}/${w.name}`) ?? []) / (fs.statSync(src).size / GiB)
    lines.push(
      `| ${w.name} | ${names.map((n) => `${t(n).toFixed(3)} (${c(n).toFixed(2)})`).join(" | ")} | ${names
        .filter((n) => n !== "nbdkit")
        .map((n) => `${(t("nbdkit") / t(n)).toFixed(2)}×`)
        .join(" | ")} |`
    )
  }
  const load1 = os.loadavg()
  process.stdout.write(
    `\n## NBD throughput, ${rounds} interleaved round(s), medians (load average ${load0[0]?.toFixed(1)} at start, ${load1[0]?.toFixed(1)} at end, ${os.cpus().length} CPUs)\n\n${lines.join("\n")}\n`
  )
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err))
  process.exitCode = 2
})
