// npm run bench:login (root): N user machines log in at the same instant, each a different user,
// through real PAM (pamtester → pam_unix → pam_exec → prolo-pam → nbdfuse + loop + ext4), on the
// site of test/e2e/site/site.ts (gw, rhfs0, rhfs1 in network namespaces, an embedded PostgreSQL).
// Each machine has its own network namespace and address (the HFS gate checks it), hostname and
// mount namespace. Run 1: every home is new (created by hfs0). Run 2: the same logins again, the
// homes already local. Run 3: the same users on machines of hfs1: every home moves. Per login: time from pamtester's start to its exit after open_session
// (p50, p99); and the time until every home is mounted.
//
// Each machine runs its login helper (`prolo-node --layer login`), started and settled before the
// first wave, as a real machine's is at boot. After each wave: where the box's CPU went, per
// login (the helpers, gw, the HFS, and the rest: PAM, socat, nbdfuse, losetup, mount, and this
// harness's nsenter/pamtester spawns) — all N machines share this box's cores, which real
// machines do not.
//
// Peer: the original's fixed costs per login, SIMULATED with the real nbd-server of this box:
// its get_hfs restarted the user's nbd-server and slept 1 s, twice per login (PAM's account
// test-mount, then open_session), one request at a time per HFS. Peer per login = 2 × (1 s +
// nbd-server start measured here); all mounted = N × that on one HFS (single-threaded server).
//
// BENCH_LOGIN_N (default 20) machines. Not in CI (numbers, not assertions).
import { readFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Redacted, Scope } from "effect"
import pg from "pg"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"
import { bundleIsFresh } from "../bin/bundle-fresh.js"
import { addLightMachine, makeSite, type Site, startLightHelper } from "../test/e2e/site/site.js"
import { benchLog, median, run } from "./support.js"

const log = benchLog("login")
const N = Number(process.env.BENCH_LOGIN_N ?? 20)

const pct = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}

const names = Array.from({ length: N }, (_, i) => `Bench${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))} User${i}`)

/** CPU time (ms) of a process, threads included (/proc, 100 ticks per second). */
const cpuOf = (pid: number | undefined): number => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(f[11]) + Number(f[12])) * 10
  } catch {
    return 0
  }
}
/** CPU time (ms) the whole box spent busy (all cores), from /proc/stat. */
const boxCpu = (): number => {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) * 10
}

/** Where the box's CPU went during `wave`, per login: the helpers, the servers, the rest. */
const cpuSplit = async <A>(site: Site, machines: ReadonlyArray<string>, wave: () => Promise<A>) => {
  const groups: Record<string, ReadonlyArray<string>> = { helpers: machines, gw: ["gw"], hfs: ["rhfs0", "rhfs1"] }
  const sample = () => ({
    box: boxCpu(),
    ...Object.fromEntries(Object.entries(groups).map(([g, names]) => [g, names.reduce((t, n) => t + cpuOf(site.nodes.get(n)?.child.pid), 0)]))
  })
  const before = sample()
  const result = await wave()
  const after = sample()
  const per = (k: string) => Math.round(((after as Record<string, number>)[k]! - (before as Record<string, number>)[k]!) / machines.length)
  const named = Object.keys(groups).reduce((t, g) => t + per(g), 0)
  return { result, cpu: `CPU per login: box ${per("box")} ms = login helper ${per("helpers")} + gw ${per("gw")} + HFS ${per("hfs")} + the rest ${per("box") - named} (PAM, tools, the harness)` }
}

/** All N machines log in at once; per-login ms and ms until the last home was mounted. */
const loginWave = async (site: Site, machines: ReadonlyArray<string>, logins: ReadonlyArray<string>) => {
  const start = Date.now()
  const per = await Promise.all(
    machines.map(async (m, i) => {
      const t = Date.now()
      const r = await site.pam(m, logins[i]!, ["authenticate", "acct_mgmt", "open_session"])
      if (r.code !== 0) throw new Error(`login of ${logins[i]} on ${m} failed: ${r.stdout}${r.stderr}`)
      return Date.now() - t
    })
  )
  const all = Date.now() - start
  for (const [i, m] of machines.entries()) {
    if (!(await site.mountAt(m, `/home/${logins[i]}`)).includes("ext4")) throw new Error(`${logins[i]}'s home is not mounted on ${m}`)
  }
  return { per, all }
}

const logoutWave = async (site: Site, machines: ReadonlyArray<string>, logins: ReadonlyArray<string>) => {
  await Promise.all(
    machines.map(async (m, i) => {
      const r = await site.pam(m, logins[i]!, ["close_session"])
      if (r.code !== 0) throw new Error(`logout of ${logins[i]} on ${m} failed: ${r.stdout}`)
    })
  )
}

/** ms from starting nbd-server (it daemonises) to its pid file: the restart the original paid. */
const nbdServerStart = async (dir: string) => {
  const image = path.join(dir, "peer.img")
  await fs.writeFile(image, "")
  await fs.truncate(image, 64 << 20)
  const conf = path.join(dir, "nbd-server.conf")
  const pidFile = path.join(dir, "nbd.pid")
  const port = 40000 + Math.floor(Math.random() * 5000) // the original picked its ports in [40000, 45000)
  await fs.writeFile(conf, `[generic]\nport = ${port}\nlisten = 127.0.12.1\n[peer]\nexportname = ${image}\n`)
  const times: Array<number> = []
  for (let i = 0; i < 5; i++) {
    await fs.rm(pidFile, { force: true })
    const t = Date.now()
    const code = await run("nbd-server", ["-p", pidFile, "-C", conf], "ignore")
    if (code !== 0) throw new Error(`nbd-server exited ${code}`)
    for (let k = 0; k < 500 && !(await fs.stat(pidFile).then(() => true, () => false)); k++) await new Promise((r) => setTimeout(r, 2))
    times.push(Date.now() - t)
    const pid = Number(await fs.readFile(pidFile, "utf8"))
    process.kill(pid, "SIGKILL")
  }
  return median(times)
}

const main = async () => {
  if (process.getuid?.() !== 0) throw new Error("bench:login needs root (network namespaces, mounts, loop devices)")
  // The nodes and the in-process fallback start from dist/ only when it is fresh (bin/launch.js);
  // from the sources each start costs seconds of tsx and the figures mean nothing.
  if (!bundleIsFresh()) {
    log("dist/ is older than the sources: npm run build")
    if ((await run("node", ["scripts/build.mjs"])) !== 0) throw new Error("npm run build failed")
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), "bench-login-"))
  await fs.chmod(work, 0o755)
  const scope = Effect.runSync(Scope.make())
  let site: Site | undefined
  try {
    const cluster = await Effect.runPromise(
      Scope.extend(startEmbeddedPostgres({ dataDir: path.join(work, "pg"), settings: { fsync: "off", synchronous_commit: "off", max_connections: "200" } }), scope)
    )
    const database = async () => {
      const admin = new pg.Client({ connectionString: Redacted.value(cluster.url("postgres")) })
      await admin.connect()
      await admin.query("CREATE DATABASE site")
      await admin.end()
      return cluster.url("site")
    }
    log(`building the site (gw, rhfs0, rhfs1, pas-a) with ${N} users`)
    site = await makeSite({ machines: [{ name: "pas-a", hfs: 0 }], users: names, leaseSeconds: 30, database })
    // N machines on hfs0 (run 1, 2), then moved to hfs1 by an operator (run 3: the same users
    // on machines of hfs1, their homes move). Each runs its login helper, as a real machine.
    const machines = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(3, "0")}`)
    const all = machines
    if (N > 200) throw new Error("BENCH_LOGIN_N: at most 200 (addresses 10.12.0.20-219)")
    const ips = all.map((_, i) => `10.12.0.${20 + i}`)
    const hfsOf = (_: number) => 0
    log(`registering ${all.length} machines`)
    for (let i = 0; i < all.length; i += 4) {
      await Promise.all(
        all.slice(i, i + 4).map((m, k) =>
          site!.prolo(["mdb", "add", "--hostname", m, "--mac", `02:12:00:00:${(2 + Math.floor((i + k) / 256)).toString(16).padStart(2, "0")}:${((i + k) % 256).toString(16).padStart(2, "0")}`, "--ip", ips[i + k]!, "--mtype", "user", "--room", "pasteur", "--hfs", String(hfsOf(i + k))])
        )
      )
    }
    for (const [i, m] of all.entries()) await addLightMachine(site, { name: m, hfs: hfsOf(i) }, ips[i]!, 100 + i, "pas-a")
    log(`starting ${all.length} login helpers`)
    for (let i = 0; i < all.length; i += 4) await Promise.all(all.slice(i, i + 4).map((m) => startLightHelper(site!, m)))
    // Machines boot long before 9:00: their helpers have settled (start-up garbage collections
    // done) when the room logs in. Wait until they idle (< 1 % of a core each over 2 s), ≤ 60 s.
    for (let k = 0; k < 30; k++) {
      const busy = () => all.reduce((t, m) => t + cpuOf(site!.nodes.get(m)?.child.pid), 0)
      const before = busy()
      await new Promise((r) => setTimeout(r, 2000))
      if ((busy() - before) / all.length < 20) break
    }
    const logins = site.logins

    log(`run 1: ${N} logins at once, new homes`)
    const { result: fresh, cpu: freshCpu } = await cpuSplit(site, machines, () => loginWave(site!, machines, logins))
    await logoutWave(site, machines, logins)
    log(`run 2: ${N} logins at once, homes local`)
    const { result: local, cpu: localCpu } = await cpuSplit(site, machines, () => loginWave(site!, machines, logins))
    await logoutWave(site, machines, logins)
    // One login at a time (nothing else on the box logs in): each machine's own latency.
    const single = Math.min(N, 20)
    log(`${single} single logins one after another, homes local`)
    const alone: Array<number> = []
    for (let i = 0; i < single; i++) {
      const r = await loginWave(site, [machines[i]!], [logins[i]!])
      alone.push(r.per[0]!)
      await logoutWave(site, [machines[i]!], [logins[i]!])
    }
    log(`moving the ${N} machines to hfs1`)
    for (let i = 0; i < all.length; i += 4) {
      await Promise.all(all.slice(i, i + 4).map((m) => site!.prolo(["mdb", "update", m, "--hfs", "1"])))
    }
    // hfs1 learns of the change through MDB's sync: a moment, not a protocol step.
    await new Promise((r) => setTimeout(r, 2000))
    log(`run 3: ${N} logins at once on hfs1's machines, homes moved from hfs0`)
    const { result: moved, cpu: movedCpu } = await cpuSplit(site, machines, () => loginWave(site!, machines, logins))
    await logoutWave(site, machines, logins)

    if (process.env.PROLO_PAM_TRACE === "1") for (const m of machines.slice(0, 3)) console.log(m, site.nodes.get(m)?.stderr.split("\n").filter((l) => l.includes("prolo-pam:")).join(" | "))
    const nbd = await nbdServerStart(work)
    const peerLogin = 2 * (1000 + nbd)
    const peerAll = N * peerLogin
    const line = (what: string, r: { per: ReadonlyArray<number>; all: number }) =>
      `${what.padEnd(34)} p50 ${String(Math.round(pct(r.per, 50))).padStart(6)} ms   p99 ${String(Math.round(pct(r.per, 99))).padStart(6)} ms   all mounted ${String(r.all).padStart(6)} ms   (peer/ours: per login ${(peerLogin / pct(r.per, 50)).toFixed(2)}x, all ${(peerAll / r.all).toFixed(2)}x)`
    console.log(`bench:login, ${N} user machines logging in at the same instant (real PAM, nbdfuse + loop + ext4), ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`)
    console.log(line("ours, new homes (hfs0 creates)", fresh))
    console.log(`  ${freshCpu}`)
    console.log(line("ours, homes already local", local))
    console.log(`  ${localCpu}`)
    console.log(
      `ours, one login at a time, local        p50 ${String(Math.round(pct(alone, 50))).padStart(6)} ms   p99 ${String(Math.round(pct(alone, 99))).padStart(6)} ms   (${alone.length} logins; peer/ours ${(peerLogin / pct(alone, 50)).toFixed(2)}x)`
    )
    console.log(line("ours, homes moved hfs0 → hfs1", moved))
    console.log(`  ${movedCpu}`)
    console.log(
      `peer (simulated: original's fixed costs)  per login ≥ 2 × (1 s sleep + nbd-server start ${nbd} ms) = ${peerLogin} ms; ${N} logins on one single-threaded HFS ≥ ${peerAll} ms`
    )
  } finally {
    await site?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e))
  process.exitCode = 1
})
