// npm run bench:login (root): N user machines log in at the same instant, each a different user,
// through real PAM (pamtester → pam_unix → pam_exec → prolo-pam → nbdfuse + loop + ext4), on the
// site of test/e2e/site/site.ts (gw, rhfs0, rhfs1 in network namespaces, an embedded PostgreSQL).
// Each machine has its own network namespace and address (the HFS gate checks it), hostname and
// mount namespace. Run 1: every home is new (created by hfs0). Run 2: the same logins again, the
// homes already local. Run 3: the same users on machines of hfs1: every home moves. Per login: time from pamtester's start to its exit after open_session
// (p50, p99); and the time until every home is mounted.
//
// Peer: the original's fixed costs per login, SIMULATED with the real nbd-server of this box:
// its get_hfs restarted the user's nbd-server and slept 1 s, twice per login (PAM's account
// test-mount, then open_session), one request at a time per HFS. Peer per login = 2 × (1 s +
// nbd-server start measured here); all mounted = N × that on one HFS (single-threaded server).
//
// BENCH_LOGIN_N (default 20) machines. Not in CI (numbers, not assertions).
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Redacted, Scope } from "effect"
import pg from "pg"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"
import { addLightMachine, makeSite, type Site } from "../test/e2e/site/site.js"
import { benchLog, median, run } from "./support.js"

const log = benchLog("login")
const N = Number(process.env.BENCH_LOGIN_N ?? 20)

const pct = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}

const names = Array.from({ length: N }, (_, i) => `Bench${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))} User${i}`)

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
    // N machines on hfs0 (run 1, 2), N on hfs1 (run 3: the same users, their homes move)
    const machines = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(3, "0")}`)
    const others = Array.from({ length: N }, (_, i) => `bench-${String(N + i).padStart(3, "0")}`)
    const all = [...machines, ...others]
    const ips = all.map((_, i) => `10.12.0.${20 + i}`)
    const hfsOf = (i: number) => (i < N ? 0 : 1)
    log(`registering ${all.length} machines`)
    for (let i = 0; i < all.length; i += 4) {
      await Promise.all(
        all.slice(i, i + 4).map((m, k) =>
          site!.prolo(["mdb", "add", "--hostname", m, "--mac", `02:12:00:00:${(2 + Math.floor((i + k) / 256)).toString(16).padStart(2, "0")}:${((i + k) % 256).toString(16).padStart(2, "0")}`, "--ip", ips[i + k]!, "--mtype", "user", "--room", "pasteur", "--hfs", String(hfsOf(i + k))])
        )
      )
    }
    for (const [i, m] of all.entries()) await addLightMachine(site, { name: m, hfs: hfsOf(i) }, ips[i]!, 100 + i, "pas-a")
    const logins = site.logins

    log(`run 1: ${N} logins at once, new homes`)
    const fresh = await loginWave(site, machines, logins)
    await logoutWave(site, machines, logins)
    log(`run 2: ${N} logins at once, homes local`)
    const local = await loginWave(site, machines, logins)
    await logoutWave(site, machines, logins)
    log(`run 3: ${N} logins at once on hfs1's machines, homes moved from hfs0`)
    const moved = await loginWave(site, others, logins)
    await logoutWave(site, others, logins)

    const nbd = await nbdServerStart(work)
    const peerLogin = 2 * (1000 + nbd)
    const peerAll = N * peerLogin
    const line = (what: string, r: { per: ReadonlyArray<number>; all: number }) =>
      `${what.padEnd(34)} p50 ${String(Math.round(pct(r.per, 50))).padStart(6)} ms   p99 ${String(Math.round(pct(r.per, 99))).padStart(6)} ms   all mounted ${String(r.all).padStart(6)} ms   (peer/ours: per login ${(peerLogin / pct(r.per, 50)).toFixed(2)}x, all ${(peerAll / r.all).toFixed(2)}x)`
    console.log(`bench:login, ${N} user machines logging in at the same instant (real PAM, nbdfuse + loop + ext4), ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`)
    console.log(line("ours, new homes (hfs0 creates)", fresh))
    console.log(line("ours, homes already local", local))
    console.log(line("ours, homes moved hfs0 → hfs1", moved))
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
