// The gateway's DNS and DHCP generators end to end: time from an MDB add (the authenticated rpc
// `prolo mdb add` uses) to the name resolving at a real named (dig from another network
// namespace) and to dhcpd restarted with the new host block, p50/p99 over N adds, against the
// peer: named-checkzone + rndc reload alone on the same zone, in the same run.
//   npm run bench:gw      (root: network namespaces; PROLO_BENCH_N=… adds, default 100)
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Redacted } from "effect"
import { MdbRpcs } from "../src/protocols/mdb.js"
import { makeRpcClient } from "../src/runtime/cli-client.js"
import { killAll, startNode, waitForOutput } from "../test/e2e/node-process.js"
import { setUpDhcpd } from "../test/support/dhcpd.js"
import { makeNetPair, sh, spawnIn } from "../test/support/netns.js"

const N = Number(process.env.PROLO_BENCH_N ?? 100)

const pct = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN
const fmt = (ms: number) => `${ms.toFixed(1)} ms`

const main = async () => {
  const pair = await makeNetPair(["192.168.1.254/24", "192.168.250.254/24"], ["192.168.1.10/24"])
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-bench-gw-"))
  try {
    const { config, lastRestart } = await setUpDhcpd(pair, root)
    const zones = path.join(root, "named")
    await fs.mkdir(zones)
    const secret = randomBytes(32).toString("base64")
    const key = `key "rndc-key" { algorithm hmac-sha256; secret "${secret}"; };`
    await fs.writeFile(
      path.join(root, "named.conf"),
      `options { directory "${zones}"; pid-file "${zones}/named.pid"; session-keyfile "${zones}/session.key"; ` +
        `listen-on { 127.0.0.1; 192.168.1.254; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; };\n` +
        `${key}\ncontrols { inet 127.0.0.1 port 953 allow { 127.0.0.1; } keys { "rndc-key"; }; };\ninclude "${zones}/named-prolo.conf";\n`
    )
    await fs.writeFile(path.join(root, "rndc.conf"), `${key}\noptions { default-key "rndc-key"; default-server 127.0.0.1; default-port 953; };\n`)
    const rndc = [...pair.exec(pair.server), "rndc", "-c", path.join(root, "rndc.conf")]
    await fs.writeFile(path.join(config, "dns.yml"), `dir: ${zones}\nrndc: ${JSON.stringify(rndc)}\n`)

    const { url } = await startNode(["--layer", "all", "--config", config], { PROLO_DATA_DIR: path.join(root, "data") })
    const dig = async (name: string) =>
      (await sh([...pair.exec(pair.client), "dig", "+short", "+tries=1", "+time=1", "@192.168.1.254", name]).catch(() => "")).trim()

    const dnsMs: Array<number> = []
    const dhcpMs: Array<number> = []
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const mdb = yield* makeRpcClient(MdbRpcs, { url, service: "mdb", secret: Redacted.make("dev-mdb-secret") })
          yield* mdb.addMachine({ hostname: "gw", mac: "11:22:33:44:55:66", ip: "192.168.1.254", mtype: "service", aliases: "ns,mdb,netboot" })
          yield* Effect.promise(async () => {
            while ((await fs.readdir(zones)).filter((f) => f.endsWith(".zone")).length < 6) await new Promise((r) => setTimeout(r, 20))
          })
          const named = spawnIn(pair, pair.server, ["named", "-g", "-n", "1", "-c", path.join(root, "named.conf")])
          yield* Effect.promise(() => waitForOutput(named, /running$/m, 60_000))
          for (let i = 1; i <= N; i++) {
            const host = `bench-${i}`
            const t0 = performance.now()
            const m = yield* mdb.addMachine({ hostname: host, mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`, mtype: "user" })
            let dnsDone = 0
            let dhcpDone = 0
            yield* Effect.promise(async () => {
              // Bounded: 4000 polls of at least 5 ms each (20 s and more) per add.
              for (let k = 0; k < 4000 && (dnsDone === 0 || dhcpDone === 0); k++) {
                if (dnsDone === 0 && (await dig(`${host}.prolo`)) === m.ip) dnsDone = performance.now() - t0
                if (dhcpDone === 0 && Number((await lastRestart()) ?? 0) >= i + 1) dhcpDone = performance.now() - t0
                await new Promise((r) => setTimeout(r, 5))
              }
            })
            dnsMs.push(dnsDone)
            dhcpMs.push(dhcpDone)
          }
        })
      )
    )
    // The peer: what the daemons' own tools take, without us: check the zone and reload it.
    const zoneFile = path.join(zones, "generated_prolo_normal.zone")
    const peerMs: Array<number> = []
    for (let i = 0; i < N; i++) {
      const t0 = performance.now()
      await sh(["named-checkzone", "-k", "fail", "prolo", zoneFile])
      await sh([...rndc, "reload", "prolo", "IN", "normal"])
      peerMs.push(performance.now() - t0)
    }
    const digMs: Array<number> = []
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now()
      await dig("gw.prolo")
      digMs.push(performance.now() - t0)
    }
    console.log(`gw bench, ${N} adds (each poll is one dig process: p50 ${fmt(pct(digMs, 0.5))}, the resolution of these figures)`)
    console.log(`  add -> name resolves         p50 ${fmt(pct(dnsMs, 0.5))}  p99 ${fmt(pct(dnsMs, 0.99))}`)
    console.log(`  add -> dhcpd restarted       p50 ${fmt(pct(dhcpMs, 0.5))}  p99 ${fmt(pct(dhcpMs, 0.99))}`)
    console.log(`  peer: named-checkzone + rndc reload  p50 ${fmt(pct(peerMs, 0.5))}  p99 ${fmt(pct(peerMs, 0.99))}`)
    console.log(`  ratio dns p50 / peer p50: ${(pct(dnsMs, 0.5) / pct(peerMs, 0.5)).toFixed(2)}`)
    if (dnsMs.includes(0) || dhcpMs.includes(0)) console.log("  WARNING: some adds never became live within the poll bound (counted as 0)")
  } finally {
    await killAll()
    await pair.remove()
    await fs.rm(root, { recursive: true, force: true })
  }
}

await main()
