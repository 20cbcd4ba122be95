import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Metric, Schema } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { FirewallProfile } from "../../src/actors/firewall/config.js"
import { listSet } from "../../src/actors/firewall/ipset.js"
import { firewallSubsystem } from "../../src/actors/firewall/layer.js"
import { swaps } from "../../src/actors/firewall/metrics.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { gwTopics, realPresence } from "../support/gw-topics.js"
import { sh } from "../support/netns.js"
import { makeRouted, OUTSIDE, type Routed } from "../support/netns-router.js"
import { mulberry32 } from "../support/random.js"
import { skipUnlessRoot } from "../support/root.js"
import { testSupervision } from "../support/supervision.js"
import { killAll, type Spawned, spawnTracked } from "./node-process.js"

// The gateway firewall for real: namespaces user — gw — outside (ours, 10.16.0.0/16), the
// shipped etc/firewall/iptables.rules (addresses mapped to this range) and real ipsets in gw,
// driven by the firewall subsystem following a hub that the real Presence service (memory lease
// store) publishes to. A TCP connect from a machine's address to the outside server proves
// access. A presence record for a login UDB does not know is left out (logged), never a crash. 1 000 seeded login/logout events (PROLO_FW_SEED replays) end in exactly the expected
// set, while a prober from the orga machine (allowed in every set) never loses a connection.

afterEach(killAll)

const ALICE_HOST = "10.16.0.10"
const ORGA_HOST = "10.16.0.11"
const CONTESTANTS = 40
// PROLO_FW_EVENTS raises the burst (default 1 000, the CI run).
const EVENTS = Number(process.env["PROLO_FW_EVENTS"] ?? "1000")
const contestantIp = (i: number) => `10.16.0.${20 + i}`
const contestantHost = (i: number) => `pas-r02p${String(i + 1).padStart(2, "0")}`

// Connects to OUTSIDE:8080 from each source address: once, or until stdin closes (at most 120 s).
// Prints {source: [ok, failed]}.
const PROBE = `
import json, os, select, socket, sys, time
srcs = sys.argv[1].split(","); once = sys.argv[2] == "once"
counts = {s: [0, 0] for s in srcs}
deadline = time.time() + 120
while time.time() < deadline:
    for s in srcs:
        try:
            c = socket.create_connection(("${OUTSIDE}", 8080), timeout=0.3, source_address=(s, 0)); c.close(); counts[s][0] += 1
        except OSError:
            counts[s][1] += 1
    if once: break
    r, _, _ = select.select([0], [], [], 0.002)
    if r and os.read(0, 1) == b"": break
print(json.dumps(counts), flush=True)
`
const SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("${OUTSIDE}", 8080)); s.listen(1024); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.close()
`

const inNs = (net: Routed, ns: string, argv: ReadonlyArray<string>): Spawned => {
  const [command = "", ...args] = [...net.exec(ns), ...argv]
  return spawnTracked(spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] }))
}

const probeOnce = async (net: Routed, source: string): Promise<boolean> => {
  const p = inNs(net, net.user, ["python3", "-c", PROBE, source, "once"])
  await p.exited
  const counts = JSON.parse(p.stdout) as Record<string, [number, number]>
  return counts[source]![0] === 1
}

const pollUntil = async (what: string, cond: () => Promise<boolean>, polls = 400) => {
  for (let i = 0; i < polls; i++) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`gave up waiting for ${what}`)
}

describe("e2e: gateway firewall in network namespaces", () => {
  it("login opens, logout closes, contest mode flips; 1 000 events end in the exact set, the orga host never cut off", async () => {
    if (skipUnlessRoot("firewall in network namespaces")) return
    const seed = Number(process.env["PROLO_FW_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
    console.log(`gw-firewall: seed ${seed} (PROLO_FW_SEED=${seed} replays)`)
    const net = await makeRouted([ALICE_HOST, ORGA_HOST])
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-pf-"))
    try {
      const shipped = await fs.readFile(path.resolve("etc/firewall/iptables.rules"), "utf8")
      const rules = path.join(dir, "iptables.rules")
      await fs.writeFile(rules, shipped.replaceAll("192.168.0.0/23", "10.16.0.0/23").replaceAll("192.168.1.0/24", "10.16.1.0/24"))
      const server = inNs(net, net.outside, ["python3", "-c", SERVER])
      await pollUntil("the outside server", async () => server.stdout.includes("listening")).catch((e: Error) => {
        throw new Error(`${e.message}: ${server.stderr}`)
      })
      const ipset = [...net.exec(net.gw), "ipset"]
      let profile = Schema.decodeUnknownSync(FirewallProfile)({
        ipset,
        rules: [...net.exec(net.gw), "iptables-restore", rules],
        debounce_ms: 50
      })

      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const t = yield* gwTopics
            const presence = yield* realPresence(t)
            const base = yield* Layer.build(testSupervision)
            const group = yield* Layer.build(supervisorGroup("firewall")).pipe(Effect.provide(base))
            const firewall = yield* firewallSubsystem(profile, Effect.sync(() => profile), "20 millis").pipe(
              Effect.provide(group),
              Effect.provide(base),
              Effect.provide(t.clientLayer)
            )
            const live = () => Effect.runPromise(listSet(ipset, "allowed-internet-access").pipe(Effect.orDie))
            const settled = (expected: ReadonlyArray<string>) =>
              Effect.promise(() =>
                pollUntil(`allowed set ${expected.join(",")}`, async () => JSON.stringify(await live()) === JSON.stringify([...expected].sort()))
              )
            const reach = (source: string) => Effect.promise(() => probeOnce(net, source))

            yield* t.publish("mdb", [
              t.machine("pas-r01p01", ALICE_HOST),
              t.machine("orga-1", ORGA_HOST, "orga"),
              ...Array.from({ length: CONTESTANTS }, (_, i) => t.machine(contestantHost(i), contestantIp(i)))
            ])
            yield* t.publish("udb", [t.user("alice"), t.user("olga", "orga"), ...Array.from({ length: CONTESTANTS }, (_, i) => t.user(`c${i}`))])
            // a presence record UDB does not know (the original's update raised and stopped there)
            yield* t.publish("presence", [t.login("ghost", contestantHost(CONTESTANTS - 1))])
            yield* settled([ORGA_HOST])
            expect(yield* reach(ORGA_HOST)).toBe(true)
            expect(yield* reach(ALICE_HOST)).toBe(false)

            yield* presence.requestLogin("alice", "pas-r01p01")
            yield* settled([ALICE_HOST, ORGA_HOST])
            expect(yield* reach(ALICE_HOST)).toBe(true)
            yield* presence.logout("alice", "pas-r01p01")
            yield* settled([ORGA_HOST])
            expect(yield* reach(ALICE_HOST)).toBe(false)

            yield* presence.requestLogin("alice", "pas-r01p01")
            yield* settled([ALICE_HOST, ORGA_HOST])
            profile = { ...profile, contest_enabled: true }
            yield* settled([ORGA_HOST])
            expect(yield* reach(ALICE_HOST)).toBe(false)
            expect(yield* reach(ORGA_HOST)).toBe(true)
            profile = { ...profile, contest_enabled: false }
            yield* settled([ALICE_HOST, ORGA_HOST])
            expect(yield* reach(ALICE_HOST)).toBe(true)

            // the burst, with the orga machine probing all along
            const prober = inNs(net, net.user, ["python3", "-c", PROBE, ORGA_HOST, "loop"])
            const swapsBefore = (yield* Metric.value(swaps)).count
            const random = mulberry32(seed)
            const logged = new Set<number>()
            for (let n = 0; n < EVENTS; n++) {
              const i = Math.floor(random() * (CONTESTANTS - 1))
              if (logged.has(i)) {
                yield* presence.logout(`c${i}`, contestantHost(i))
                logged.delete(i)
              } else {
                yield* presence.requestLogin(`c${i}`, contestantHost(i))
                logged.add(i)
              }
              // every 100 events, let a swap happen under the prober (not one swap at the end)
              if (n % 100 === 99) {
                const before = (yield* Metric.value(swaps)).count
                yield* Effect.promise(() => pollUntil("a swap", async () => Effect.runSync(Metric.value(swaps)).count > before))
              }
            }
            const expected = [ALICE_HOST, ORGA_HOST, ...[...logged].map(contestantIp)]
            yield* settled(expected)
            expect(firewall.applied()).toEqual([...expected].sort())
            prober.child.stdin?.end()
            yield* Effect.promise(() => prober.exited)
            const [ok, failed] = (JSON.parse(prober.stdout) as Record<string, [number, number]>)[ORGA_HOST]!
            const swapCount = (yield* Metric.value(swaps)).count - swapsBefore
            console.log(`gw-firewall: ${logged.size} logged after ${EVENTS} events, ${swapCount} swaps, orga prober ${ok} ok / ${failed} failed`)
            expect(failed).toBe(0)
            expect(ok).toBeGreaterThan(0)
            expect(swapCount).toBeGreaterThanOrEqual(10)
            expect(swapCount).toBeLessThan(EVENTS)
          })
        )
      )

      // every new connection from the LAN went through the LOG rule first
      const counters = await sh([...net.exec(net.gw), "iptables", "-L", "FORWARD", "-v", "-x", "-n"])
      const logLine = counters.split("\n").find((l) => l.includes("LOG"))
      expect(Number(logLine?.trim().split(/\s+/)[0])).toBeGreaterThan(0)
    } finally {
      await killAll()
      await net.remove()
      await fs.rm(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
