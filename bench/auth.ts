// `npm run bench:auth`: what signing and checking one rpc call's time-auth token costs
// (payload re-encoded with the rpc's schema, canonical JSON, HMAC, window and constant-time
// compare, on both sides), against a peer in the same process: a bare node:crypto HMAC-SHA256
// hex sign and verify of the same message, which is the floor any such scheme pays.
// Knobs (environment): CALLS [20000] per round, ROUNDS [5]; the best and the median round print.
import { Rpc } from "@effect/rpc"
import { Effect, Redacted, Schema } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import { signedMessage } from "../src/runtime/rpc-auth-message.js"
import { check, generate } from "../src/runtime/timeauth.js"

const CALLS = Number(process.env["CALLS"] ?? "20000")
const ROUNDS = Number(process.env["ROUNDS"] ?? "5")

const rpc = Rpc.make("RequestLogin", { payload: { login: Schema.String, hostname: Schema.String } })
const secret = Redacted.make("bench-secret")
const payload = { login: "user12", hostname: "pas-12" }

const ours = Effect.gen(function* () {
  const token = yield* generate(secret, yield* signedMessage(rpc, payload))
  yield* check(token, secret, yield* signedMessage(rpc, payload))
})

const peer = () => {
  const message = `RequestLogin\n${JSON.stringify(payload)}`
  const seconds = String(Math.floor(Date.now() / 1000))
  const token = `${seconds}:${createHmac("sha256", "bench-secret").update(message + seconds).digest("hex")}`
  const [stamp, hex] = token.split(":") as [string, string]
  const expected = createHmac("sha256", "bench-secret").update(message + stamp).digest()
  if (!timingSafeEqual(expected, Buffer.from(hex, "hex"))) throw new Error("peer: bad signature")
}

const perCallMicros = (body: () => void): number => {
  const t0 = performance.now()
  for (let i = 0; i < CALLS; i++) body()
  return ((performance.now() - t0) * 1000) / CALLS
}

const runOurs = () => Effect.runSync(ours)
perCallMicros(runOurs) // warm-up
perCallMicros(peer)
const rows: Array<{ ours: number; peer: number }> = []
for (let r = 0; r < ROUNDS; r++) rows.push({ ours: perCallMicros(runOurs), peer: perCallMicros(peer) })
const sorted = (xs: Array<number>) => [...xs].sort((a, b) => a - b)
const median = (xs: Array<number>) => sorted(xs)[Math.floor(xs.length / 2)] ?? NaN
const best = (xs: Array<number>) => sorted(xs)[0] ?? NaN
const o = rows.map((r) => r.ours)
const p = rows.map((r) => r.peer)
console.log(`time-auth sign + check per rpc call, ${CALLS} calls × ${ROUNDS} rounds`)
console.log(`| | best µs | median µs |`)
console.log(`|---|---|---|`)
console.log(`| ours (schema encode, canonical JSON, HMAC, checks) | ${best(o).toFixed(1)} | ${median(o).toFixed(1)} |`)
console.log(`| peer (bare HMAC sign + verify) | ${best(p).toFixed(1)} | ${median(p).toFixed(1)} |`)
console.log(`| ratio ours/peer | ${(best(o) / best(p)).toFixed(2)}× | ${(median(o) / median(p)).toFixed(2)}× |`)
