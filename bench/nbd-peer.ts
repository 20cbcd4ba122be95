// Throughput of one NBD server export with nbdcopy, the same measurement for our server and
// for nbdkit (bench:nbd, bench:nbd-interleave): start the server, wait until it answers,
// time nbdcopy reads (and writes) with 1 connection and nbdcopy's default (multi-conn,
// min(4, nproc) connections, only when the server offers NBD_FLAG_CAN_MULTI_CONN), sample
// the peak RSS of the server's process tree, check the written content, stop the server.
//
// Each step: one untimed warm-up copy, then RUNS [3] timed copies, median reported. This box
// is shared, so before each step we wait (up to QUIET_TIMEOUT [30] s) until the machine's
// busy CPU is at most QUIET_PCT [15] %, and we repeat a step (up to TRIES [3]) whose
// background load (CPU not used by the server or nbdcopy) was above BG_MAX [25] %, keeping
// the attempt with the least background.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { median, root, run, sleep, toolEnv } from "./support.js"

const knob = (name: string, fallback: number) => Number(process.env[name] ?? String(fallback))
const HZ = 100 // USER_HZ: /proc reports CPU time in 1/100 s on Linux

/** Runs a tool and returns its exit code and stdout (its stderr dropped). */
const output = (cmd: string, args: ReadonlyArray<string>): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env: toolEnv(), stdio: ["ignore", "pipe", "ignore"] })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code: code ?? 1, stdout }))
  })

const statFields = (pid: number | "self"): Array<string> | undefined => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // "pid (comm) state ppid …": comm may hold spaces, so read after the last ')'
    return s.slice(s.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** `pid` and all its descendants, from /proc. */
const processTree = (pid: number): Array<number> => {
  const kids = new Map<number, Array<number>>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    const ppid = Number(statFields(Number(entry))?.[1])
    kids.set(ppid, [...(kids.get(ppid) ?? []), Number(entry)])
  }
  const tree: Array<number> = []
  for (const todo = [pid]; todo.length > 0; ) {
    const p = todo.pop() as number
    tree.push(p)
    todo.push(...(kids.get(p) ?? []))
  }
  return tree
}

/** CPU seconds used by the server's process tree (children it reaped included). */
export const cpuSeconds = (pid: number): number => {
  let jiffies = 0
  for (const p of processTree(pid)) {
    const f = statFields(p)
    if (f === undefined) continue
    jiffies += Number(f[11]) + Number(f[12]) + (p === pid ? Number(f[13]) + Number(f[14]) : 0)
  }
  return jiffies / HZ
}

/** CPU seconds of the children this process has waited for (nbdcopy runs, once they ended). */
const reapedChildrenCpu = (): number => {
  const f = statFields("self")
  return f === undefined ? NaN : (Number(f[13]) + Number(f[14])) / HZ
}

/** Resident memory of one process, KiB (0 once it is gone). */
export const processRssKiB = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** Resident memory of the server's process tree, KiB. */
const treeRssKiB = (pid: number): number => processTree(pid).reduce((sum, p) => sum + processRssKiB(p), 0)

/** Busy CPU seconds of the whole machine (user, nice, system, irq, softirq, steal). */
const machineBusy = (): number => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/) ?? []
  return [1, 2, 3, 6, 7, 8].reduce((sum, i) => sum + Number(f[i]), 0) / HZ
}

/** Waits until the machine is quiet; returns the busy % seen last (`(timeout)` when it never was). */
const waitQuiet = async (): Promise<string> => {
  const until = Date.now() + knob("QUIET_TIMEOUT", 30) * 1000
  for (;;) {
    const b0 = machineBusy()
    await sleep(1000)
    const pct = Math.round(((machineBusy() - b0) * 100) / os.cpus().length)
    if (pct <= knob("QUIET_PCT", 15)) return `${pct}`
    if (Date.now() >= until) return `${pct}(timeout)`
  }
}

export interface NbdServer {
  readonly uri: string
  readonly pid: number
  readonly stop: () => Promise<void>
}

/** Starts `command` (exec'd by sh, so its pid is the server's) and waits until `uri` answers. */
export const startNbdServer = async (command: string, port: number, exportName: string): Promise<NbdServer> => {
  const child = spawn("sh", ["-c", `exec ${command}`], { cwd: root, env: toolEnv(), stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)))
  let running = true
  const closed = new Promise<void>((r) => child.once("close", () => ((running = false), r())))
  const stop = async () => {
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    await closed
    clearTimeout(timer)
  }
  const uri = `nbd://127.0.0.1:${port}/${exportName}`
  for (let i = 0; (await output("nbdinfo", ["--size", uri])).code !== 0; i++) {
    if (!running || i > 150) {
      await stop()
      throw new Error(`server did not answer on ${uri}: ${command}\n${stderr}`)
    }
    await sleep(200)
  }
  return { uri, pid: child.pid as number, stop }
}

/** Runs nbdcopy with `args`; its wall time in seconds. */
export const timedNbdcopy = async (args: ReadonlyArray<string>): Promise<number> => {
  const t0 = process.hrtime.bigint()
  const code = await run("nbdcopy", args, "ignore")
  if (code !== 0) throw new Error(`nbdcopy ${args.join(" ")} exited ${code}`)
  return Number(process.hrtime.bigint() - t0) / 1e9
}

export interface PeerRow {
  readonly mbs: number
  readonly seconds: number
}
export interface PeerResult {
  readonly rows: ReadonlyMap<string, PeerRow>
  readonly peakRssMiB: number
  readonly ok: boolean
}

// One step: warm-up, then the timed runs in the quietest of up to TRIES attempts.
const step = async (label: string, name: string, pid: number, bytes: number, args: ReadonlyArray<string>): Promise<PeerRow> => {
  const log = (msg: string) => process.stderr.write(`[bench ${label}] ${msg}\n`)
  await timedNbdcopy(args)
  let best: (PeerRow & { readonly bg: number }) | undefined
  for (let attempt = 1; attempt <= knob("TRIES", 3); attempt++) {
    const quiet = await waitQuiet()
    const [b0, s0, c0, t0] = [machineBusy(), cpuSeconds(pid), reapedChildrenCpu(), performance.now()]
    const times: Array<number> = []
    for (let i = 0; i < knob("RUNS", 3); i++) times.push(await timedNbdcopy(args))
    const [b1, s1, c1, t1] = [machineBusy(), cpuSeconds(pid), reapedChildrenCpu(), performance.now()]
    const bg = Math.max(0, b1 - b0 - (s1 - s0) - (c1 - c0)) / (((t1 - t0) / 1000) * os.cpus().length) * 100
    const seconds = median(times)
    const row = { mbs: bytes / 1e6 / seconds, seconds, bg }
    log(
      `${name} try ${attempt}: median ${seconds.toFixed(3)} s = ${row.mbs.toFixed(0)} MB/s, runs ${times.map((t) => t.toFixed(3)).join(" ")}` +
        `, server CPU ${(s1 - s0).toFixed(2)} s, background ${bg.toFixed(0)}% (before: ${quiet}%)`
    )
    if (best === undefined || bg < best.bg) best = row
    if (bg <= knob("BG_MAX", 25)) break
  }
  const { mbs, seconds } = best as PeerRow
  return { mbs, seconds }
}

/**
 * Measures one server: reads of the whole export, then (when `src` is given) writes of
 * `src` into it and a check that the export then holds `src`.
 */
export const peerBench = async (label: string, command: string, port: number, exportName: string, src?: string): Promise<PeerResult> => {
  const log = (msg: string) => process.stderr.write(`[bench ${label}] ${msg}\n`)
  log(`starting: ${command}`)
  const server = await startNbdServer(command, port, exportName)
  const rows = new Map<string, PeerRow>()
  let ok = true
  let peak = treeRssKiB(server.pid)
  const sampler = setInterval(() => (peak = Math.max(peak, treeRssKiB(server.pid))), 50)
  const measure = async (name: string, bytes: number, args: ReadonlyArray<string>) => {
    try {
      rows.set(name, await step(label, name, server.pid, bytes, args))
    } catch (err) {
      log(`FAILED: ${name}: ${err instanceof Error ? err.message : String(err)}`)
      ok = false
    }
  }
  try {
    const size = Number((await output("nbdinfo", ["--size", server.uri])).stdout.trim())
    const multiConn = (await run("nbdinfo", ["--can", "multi-conn", server.uri], "ignore")) === 0
    log(`server pid ${server.pid}, export size ${size}, multi-conn ${multiConn ? "yes" : "no"}`)
    await measure("read-C1", size, ["--connections=1", server.uri, "null:"])
    await measure("read-default", size, [server.uri, "null:"])
    if (src !== undefined) {
      const srcSize = fs.statSync(src).size
      if (srcSize > size) throw new Error(`source ${src} (${srcSize} bytes) is larger than the export (${size})`)
      await measure("write-C1", srcSize, ["--connections=1", src, server.uri])
      await measure("write-default", srcSize, [src, server.uri])
      const same = await run("sh", ["-c", `nbdcopy --connections=1 '${server.uri}' - | head -c ${srcSize} | cmp -s - '${src}'`], "ignore")
      log(same === 0 ? "verify: export content == source (OK)" : "verify: export content != source (FAIL)")
      if (same !== 0) ok = false
    }
  } catch (err) {
    log(`FAILED: ${err instanceof Error ? err.message : String(err)}`)
    ok = false
  } finally {
    clearInterval(sampler)
    await server.stop()
  }
  log(`peak server RSS ${(peak / 1024).toFixed(0)} MiB`)
  return { rows, peakRssMiB: peak / 1024, ok }
}
