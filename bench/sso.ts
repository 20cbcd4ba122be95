// `npm run bench:sso`: the SSO whois's latency under the load nginx puts on it (one auth
// subrequest per protected request), against a peer in the same run: a bare node:http handler
// answering X-SSO-User from a Map, which is the floor any whois over HTTP pays. Ours is the real
// subsystem (`ssoWhois`: followers of an in-memory hub carrying 150 machines and 150 logins,
// freshness check, allow list, request counter). A worker thread sends an open-loop RATE
// requests/s over keep-alive loopback connections (as nginx's upstream keepalive) and times each.
// Knobs (environment): RATE [2000] requests/s, SECONDS [2] per round, ROUNDS [8] per server
// (alternating, short rounds so that the box's noise falls on both alike); the median round prints, goal p99 < 1 ms.
// CALIBRATE=1 puts a second bare peer in our place (an A/A run): the ratio it prints is the
// box's noise floor, to read ours against (on a loaded 2-core box it swung 0.5x-2.5x).
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Worker } from "node:worker_threads"
import { Effect, Layer, Schema } from "effect"
import { SsoProfile } from "../src/actors/sso/config.js"
import { ssoWhois } from "../src/actors/sso/layer.js"
import { supervisorGroup } from "../src/runtime/supervisor.js"
import { gwTopics, settle } from "../test/support/gw-topics.js"
import { testSupervision } from "../test/support/supervision.js"
import { benchLog, median } from "./support.js"

const RATE = Number(process.env["RATE"] ?? "2000")
const SECONDS = Number(process.env["SECONDS"] ?? "2")
const ROUNDS = Number(process.env["ROUNDS"] ?? "8")
const CALIBRATE = process.env["CALIBRATE"] === "1"
const HOST = "127.0.16.1"
const MACHINES = 150
const log = benchLog("sso")

const ipOf = (i: number) => `192.168.${i >> 8}.${(i & 255) + 1}`

interface Figures {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly n: number
  readonly wrong: number
  readonly achieved: number
}

// Plain JS (an eval worker): open-loop sender, latency of each request in ms.
const LOAD = `
const { parentPort, workerData } = require("node:worker_threads")
const http = require("node:http")
const { host, port, rate, seconds, machines } = workerData
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })
const total = rate * seconds
const lat = []
let sent = 0, done = 0, wrong = 0
const ipOf = (i) => "192.168." + (i >> 8) + "." + ((i & 255) + 1)
const start = performance.now()
const finish = () => {
  lat.sort((a, b) => a - b)
  const elapsed = (performance.now() - start) / 1000
  parentPort.postMessage({ p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)], max: lat[lat.length - 1], n: lat.length, wrong, achieved: lat.length / elapsed })
  agent.destroy()
}
const fire = (i) => {
  const t0 = performance.now()
  const req = http.request({ host, port, path: "/", agent, localAddress: host, headers: { "X-Real-IP": ipOf(i % machines) } }, (res) => {
    res.resume()
    res.on("end", () => {
      if (res.headers["x-sso-user"] !== "u" + (i % machines)) wrong++
      lat.push(performance.now() - t0)
      if (++done === total) finish()
    })
  })
  req.on("error", () => { wrong++; if (++done === total) finish() })
  req.end()
}
const tick = setInterval(() => {
  const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000))
  while (sent < due) fire(sent++)
  if (sent >= total) clearInterval(tick)
}, 1)
`

const load = (port: number, seconds: number) =>
  new Promise<Figures>((resolve, reject) => {
    const worker = new Worker(LOAD, { eval: true, workerData: { host: HOST, port, rate: RATE, seconds, machines: MACHINES } })
    worker.once("message", (m: Figures) => {
      void worker.terminate()
      resolve(m)
    })
    worker.once("error", reject)
  })

const peerServer = () =>
  new Promise<{ port: number; close: () => void }>((resolve) => {
    const map = new Map(Array.from({ length: MACHINES }, (_, i) => [ipOf(i), `u${i}`] as const))
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      const user = map.get(String(req.headers["x-real-ip"]))
      res.writeHead(200, user === undefined ? { "Content-Length": "0" } : { "X-SSO-User": user, "Content-Length": "0" })
      res.end()
    })
    server.listen(0, HOST, () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close() }))
  })

const fmt = (f: Figures) => `p50 ${f.p50.toFixed(3)} ms  p99 ${f.p99.toFixed(3)} ms  max ${f.max.toFixed(2)} ms  (${f.n} requests, ${f.achieved.toFixed(0)}/s, ${f.wrong} wrong)`

const program = Effect.scoped(
  Effect.gen(function* () {
    const t = yield* gwTopics
    const profile = Schema.decodeUnknownSync(SsoProfile)({ listen: `${HOST}:0`, allow: [HOST] })
    const group = yield* Layer.build(supervisorGroup("sso").pipe(Layer.provideMerge(testSupervision)))
    const whois = yield* ssoWhois(profile).pipe(Effect.provide(group), Effect.provide(t.clientLayer), Effect.provide(t.metrics))
    yield* t.publish("mdb", Array.from({ length: MACHINES }, (_, i) => t.machine(`pas-m${i}`, ipOf(i))))
    yield* t.publish("presence", Array.from({ length: MACHINES }, (_, i) => t.login(`u${i}`, `pas-m${i}`)))
    yield* settle
    const peer = yield* Effect.promise(peerServer)
    yield* Effect.addFinalizer(() => Effect.sync(peer.close))
    const twin = CALIBRATE ? yield* Effect.promise(peerServer) : undefined
    if (twin !== undefined) yield* Effect.addFinalizer(() => Effect.sync(twin.close))
    const address = twin ?? whois.address
    log(`${RATE} requests/s for ${SECONDS} s, ${ROUNDS} rounds each, alternating`)
    yield* Effect.promise(() => load(address.port, 1)) // warm-up
    yield* Effect.promise(() => load(peer.port, 1))
    const ours: Array<Figures> = []
    const bare: Array<Figures> = []
    for (let r = 0; r < ROUNDS; r++) {
      // Whichever runs first in a round measured worse (a fresh worker after the previous
      // round's teardown): the order alternates so neither side always pays it.
      const runOurs = Effect.promise(() => load(address.port, SECONDS))
      const runPeer = Effect.promise(() => load(peer.port, SECONDS))
      if (r % 2 === 0) {
        ours.push(yield* runOurs)
        bare.push(yield* runPeer)
      } else {
        bare.push(yield* runPeer)
        ours.push(yield* runOurs)
      }
      log(`round ${r + 1}: ours ${fmt(ours.at(-1)!)} | peer ${fmt(bare.at(-1)!)}`)
    }
    const pick = (xs: Array<Figures>, k: "p50" | "p99") => median(xs.map((x) => x[k]))
    const row = (name: string, xs: Array<Figures>) =>
      `${name.padEnd(30)} p50 ${pick(xs, "p50").toFixed(3)} ms   p99 ${pick(xs, "p99").toFixed(3)} ms   wrong answers ${xs.reduce((a, x) => a + x.wrong, 0)}`
    console.log(`SSO whois under ${RATE} requests/s over loopback (median of ${ROUNDS} rounds of ${SECONDS} s)`)
    console.log(row(CALIBRATE ? "A/A: a second bare peer" : "ours (ssoWhois, real subsystem)", ours))
    console.log(row("peer (bare node:http + Map)", bare))
    console.log(`ratio ours/peer: p50 ${(pick(ours, "p50") / pick(bare, "p50")).toFixed(2)}x, p99 ${(pick(ours, "p99") / pick(bare, "p99")).toFixed(2)}x; goal p99 < 1 ms: ${pick(ours, "p99") < 1 ? "met" : "NOT met"}`)
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
