// `npm run bench:nbd`: our NBD server against nbdkit's file plugin, back to back, with
// the same measurement for both (bench/nbd-peer.ts: nbdcopy throughput, peak RSS of the
// server's process tree).
//
// Per server: one run on a 1 GiB image full of data (read and write, 1 connection and
// nbdcopy's default multi-conn) and one read-only run on a 2 GiB sparse image with
// 100 × 1 MiB of data (how well holes are skipped: block status).
//
// Knobs (environment): NBD_BENCH_DIR [/var/tmp/prolo-nbd-bench] holds the images;
// ROUNDS [1] alternates ours/nbdkit that many times and
// keeps each one's best; NBD_BENCH_PROFILE=1 runs our server under `node --cpu-prof`
// and prints where its CPU time went; our server runs from the dist/ bundle (see nbd-bundle.ts);
// NBD_BENCH_OURS='CMD with @PORT@ and @IMG@'
// replaces our server command. RUNS/QUIET_*/TRIES/BG_MAX: see nbd-peer.ts.
// Then the memory run (bench/nbd-memory.ts): RSS idle / peak / after of both servers for a
// 1 GiB copy and for 50 clients of random 4 KiB I/O. NBD_BENCH_ONLY=throughput|memory
// runs one half; MEMORY_ROUNDS [ROUNDS]; MEMORY_AFTER_S [25] (our idle trim is 10 s).
import * as fs from "node:fs"
import * as path from "node:path"
import { nbdServeArgs } from "./nbd-bundle.js"
import { memoryReport, randomDriver, runMemoryBench } from "./nbd-memory.js"
import { peerBench, type PeerResult } from "./nbd-peer.js"
import { summarizeProfiles } from "./nbd-profile.js"
import { benchLog, freePort, root, run } from "./support.js"

const work = process.env["NBD_BENCH_DIR"] ?? "/var/tmp/prolo-nbd-bench"
const rounds = Number(process.env["ROUNDS"] ?? "1")
const profile = process.env["NBD_BENCH_PROFILE"] === "1"
const MiB = 1 << 20
const GiB = 1 << 30

const log = benchLog("nbd")

const requireTools = async () => {
  for (const t of ["nbdkit", "nbdcopy", "nbdinfo", "python3"]) {
    if ((await run("sh", ["-c", `command -v ${t}`], "ignore")) !== 0) throw new Error(`missing tool ${t} (Debian: nbdkit, libnbd-bin)`)
  }
}

// The images: random 1 GiB source, a data image of the same content, a sparse image.
const prepareImages = () => {
  fs.mkdirSync(work, { recursive: true })
  const src = path.join(work, "src1g.img")
  if (!fs.existsSync(src) || fs.statSync(src).size !== GiB) {
    log(`creating ${src} (1 GiB random)`)
    const fd = fs.openSync(src, "w")
    const chunk = Buffer.alloc(16 * MiB)
    for (let off = 0; off < GiB; off += chunk.length) {
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i)
      fs.writeSync(fd, chunk, 0, chunk.length, off)
    }
    fs.closeSync(fd)
  }
  const data = path.join(work, "data1g.img")
  if (!fs.existsSync(data) || fs.statSync(data).blocks * 512 < GiB) fs.copyFileSync(src, data)
  const sparse = path.join(work, "sparse2g.img")
  const fd = fs.openSync(sparse, "w")
  fs.ftruncateSync(fd, 2 * GiB)
  const block = fs.readFileSync(src).subarray(0, MiB)
  for (let i = 0; i < 100; i++) fs.writeSync(fd, block, 0, MiB, i * 20 * MiB)
  fs.closeSync(fd)
  return { src, data, sparse }
}

interface ServerDef {
  readonly name: string
  readonly exportName: string
  readonly command: (port: number, img: string, tag: string) => string
}

const profDir = path.join(work, "cpuprof")
let ourArgs = ""
const ourCommand = (port: number, img: string, tag: string): string => {
  const custom = process.env["NBD_BENCH_OURS"]
  if (custom !== undefined) return custom.replaceAll("@PORT@", String(port)).replaceAll("@IMG@", img)
  const node = profile ? `node --cpu-prof --cpu-prof-dir=${path.join(profDir, tag)}` : "node"
  return `${node} ${ourArgs} --listen 127.0.0.1:${port} --export bench=${img}`
}

const servers: ReadonlyArray<ServerDef> = [
  { name: "ours", exportName: "bench", command: ourCommand },
  { name: "nbdkit", exportName: "", command: (port, img) => `nbdkit -f -i 127.0.0.1 -p ${port} file file=${img}` }
]

const best = (a: PeerResult | undefined, b: PeerResult): PeerResult => {
  if (a === undefined) return b
  const rows = new Map(a.rows)
  for (const [k, r] of b.rows) {
    const old = rows.get(k)
    if (old === undefined || !(old.mbs >= r.mbs)) rows.set(k, r)
  }
  return { rows, peakRssMiB: Math.max(a.peakRssMiB, b.peakRssMiB), ok: a.ok && b.ok }
}

const only = process.env["NBD_BENCH_ONLY"]

const main = async () => {
  await requireTools()
  const imgs = prepareImages()
  ourArgs = await nbdServeArgs()
  if (only !== "memory") await throughputBench(imgs)
  if (only !== "throughput") await memoryBench(imgs)
}

const memoryBench = async (imgs: { readonly src: string; readonly data: string }) => {
  const afterSeconds = Number(process.env["MEMORY_AFTER_S"] ?? "25")
  const seed = Number(process.env["NBD_BENCH_SEED"] ?? "1")
  log(`memory run: random I/O clients seeded from ${seed} (NBD_BENCH_SEED)`)
  const results = await runMemoryBench(
    servers.map((s) => ({ name: s.name, exportName: s.exportName, command: (port, img) => s.command(port, img, `${s.name}-memory`) })),
    { port: freePort, image: imgs.data, src: imgs.src, driver: randomDriver(root), afterSeconds, seed },
    Number(process.env["MEMORY_ROUNDS"] ?? String(rounds))
  )
  const { text, verdicts } = memoryReport(results, "ours", "nbdkit", afterSeconds)
  process.stdout.write(text + "\n")
  process.stdout.write(verdicts.length === 0 ? "memory verdict: our growth over idle is at most nbdkit's peak on both workloads\n" : verdicts.map((v) => `- ${v}`).join("\n") + "\n")
}

const throughputBench = async (imgs: { readonly src: string; readonly data: string; readonly sparse: string }) => {
  if (profile) fs.rmSync(profDir, { recursive: true, force: true })
  const dataRes = new Map<string, PeerResult>()
  const sparseRes = new Map<string, PeerResult>()
  for (let round = 1; round <= rounds; round++) {
    for (const s of servers) {
      const tag = `${s.name}-r${round}`
      const port = await freePort()
      const d = await peerBench(`${tag}-data`, s.command(port, imgs.data, `${tag}-data`), port, s.exportName, imgs.src)
      dataRes.set(s.name, best(dataRes.get(s.name), d))
      const port2 = await freePort()
      const sp = await peerBench(`${tag}-sparse`, s.command(port2, imgs.sparse, `${tag}-sparse`), port2, s.exportName)
      sparseRes.set(s.name, best(sparseRes.get(s.name), sp))
    }
  }
  report(dataRes, sparseRes)
  if (profile) {
    log(`CPU profiles in ${profDir}`)
    process.stdout.write(`\n### Where our server's CPU time went (node --cpu-prof, all runs)\n\n${summarizeProfiles(profDir)}\n`)
  }
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-")

const report = (data: ReadonlyMap<string, PeerResult>, sparse: ReadonlyMap<string, PeerResult>) => {
  const ours = { d: data.get("ours"), s: sparse.get("ours") }
  const kit = { d: data.get("nbdkit"), s: sparse.get("nbdkit") }
  const verdicts: Array<string> = []
  const lines = [
    "| metric | ours | nbdkit 1.32 file | ours/nbdkit |",
    "|---|---|---|---|"
  ]
  const throughput = (label: string, key: string) => {
    const a = ours.d?.rows.get(key)?.mbs ?? NaN
    const b = kit.d?.rows.get(key)?.mbs ?? NaN
    const ratio = a / b
    lines.push(`| ${label} (MB/s) | ${fmt(a)} | ${fmt(b)} | ${fmt(ratio, 2)}× |`)
    if (!(ratio >= 0.7)) verdicts.push(`NOT DONE: ${label} at ${fmt(ratio, 2)}× nbdkit (< 0.7×)`)
    else if (ratio < 1) verdicts.push(`below goal: ${label} at ${fmt(ratio, 2)}× nbdkit (goal ≥ 1.0×; see the CPU profile: NBD_BENCH_PROFILE=1)`)
  }
  throughput("read, 1 conn", "read-C1")
  throughput("read, default conns", "read-default")
  throughput("write, 1 conn", "write-C1")
  throughput("write, default conns", "write-default")
  for (const [label, key] of [
    ["2 GiB sparse read, 1 conn", "read-C1"],
    ["2 GiB sparse read, default conns", "read-default"]
  ] as const) {
    const a = ours.s?.rows.get(key)?.seconds ?? NaN
    const b = kit.s?.rows.get(key)?.seconds ?? NaN
    lines.push(`| ${label} (s, lower is better) | ${fmt(a, 3)} | ${fmt(b, 3)} | ${fmt(a / b, 2)}× |`)
    if (!(a <= 2 * b)) verdicts.push(`NOT DONE: ${label} takes ${fmt(a / b, 2)}× nbdkit's time (> 2×)`)
  }
  const rss = (r: { d: PeerResult | undefined; s: PeerResult | undefined }) => Math.max(r.d?.peakRssMiB ?? NaN, r.s?.peakRssMiB ?? NaN)
  lines.push(`| peak server RSS (MiB) | ${fmt(rss(ours))} | ${fmt(rss(kit))} | ${fmt(rss(ours) / rss(kit), 1)}× |`)
  const failed = [...data.entries(), ...sparse.entries()].filter(([, r]) => !r.ok).map(([n]) => n)
  if (failed.length > 0) verdicts.push(`peer benchmark reported a failure for: ${[...new Set(failed)].join(", ")} (see the log above)`)
  process.stdout.write(`\n## NBD benchmark: ours vs nbdkit (nbdcopy, ${rounds} round(s), best of rounds)\n\n${lines.join("\n")}\n\n`)
  process.stdout.write(verdicts.length === 0 ? "verdict: at or above nbdkit on every figure\n" : verdicts.map((v) => `- ${v}`).join("\n") + "\n")
  if (verdicts.some((v) => v.startsWith("NOT DONE") || v.startsWith("peer"))) process.exitCode = 1
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:nbd] ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 2
})
