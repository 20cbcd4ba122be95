// `npm run bench:auth`: what signing and checking one rpc call's time-auth token costs
// (payload re-encoded with the rpc's schema, canonical JSON, HMAC, window and constant-time
// compare, on both sides), against a peer in the same process: a bare node:crypto HMAC-SHA256
// hex sign and verify of the same message, which is the floor any such scheme pays. Ours runs
// twice: `check` (verification alone, as before tokens were spent) and `accept` (what servers
// run: verification plus the replay cache, each token remembered until its window closes).
// Knobs (environment): CALLS [20000] per round, ROUNDS [5]; the best and the median round print.
import { Rpc } from "@effect/rpc"
import { Effect, Redacted, Schema } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import { signedMessage } from "../src/runtime/rpc-auth-message.js"
import { accept, check, generate } from "../src/runtime/timeauth.js"

const CALLS = Number(process.env["CALLS"] ?? "20000")
const ROUNDS = Number(process.env["ROUNDS"] ?? "5")

const rpc = Rpc.make("RequestLogin", { payload: { login: Schema.String, hostname: Schema.String } })
const secret = Redacted.make("bench-secret")
const payload = { login: "user12", hostname: "pas-12" }

const ours = (verify: typeof check, key: Redacted.Redacted<string>) =>
  Effect.gen(function* () {
    const token = yield* generate(key, yield* signedMessage(rpc, payload))
    yield* verify(token, key, yield* signedMessage(rpc, payload))
  })
const oursCheck = ours(check, secret)

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

const runCheck = () => Effect.runSync(oursCheck)
// A fresh secret (so a fresh replay cache) per measured run: CALLS tokens within a few seconds
// must stay under the cache's capacity of live tokens (REPLAY_CACHE_CAPACITY), as in service.
let acceptRun = ours(accept, Redacted.make("bench-secret"))
const runAccept = () => Effect.runSync(acceptRun)
const freshAccept = () => {
  acceptRun = ours(accept, Redacted.make("bench-secret"))
  return runAccept
}
perCallMicros(runCheck) // warm-up
perCallMicros(freshAccept())
perCallMicros(peer)
const rows: Array<{ check: number; accept: number; peer: number }> = []
for (let r = 0; r < ROUNDS; r++) rows.push({ check: perCallMicros(runCheck), accept: perCallMicros(freshAccept()), peer: perCallMicros(peer) })
const sorted = (xs: Array<number>) => [...xs].sort((a, b) => a - b)
const median = (xs: Array<number>) => sorted(xs)[Math.floor(xs.length / 2)] ?? NaN
const best = (xs: Array<number>) => sorted(xs)[0] ?? NaN
const c = rows.map((r) => r.check)
const a = rows.map((r) => r.accept)
const p = rows.map((r) => r.peer)
console.log(`time-auth sign + check per rpc call, ${CALLS} calls × ${ROUNDS} rounds`)
console.log(`| | best µs | median µs |`)
console.log(`|---|---|---|`)
console.log(`| ours, check (schema encode, canonical JSON, HMAC, checks) | ${best(c).toFixed(1)} | ${median(c).toFixed(1)} |`)
console.log(`| ours, accept (check + replay cache) | ${best(a).toFixed(1)} | ${median(a).toFixed(1)} |`)
console.log(`| peer (bare HMAC sign + verify) | ${best(p).toFixed(1)} | ${median(p).toFixed(1)} |`)
console.log(`| ratio check/peer | ${(best(c) / best(p)).toFixed(2)}× | ${(median(c) / median(p)).toFixed(2)}× |`)
console.log(`| ratio accept/peer | ${(best(a) / best(p)).toFixed(2)}× | ${(median(a) / median(p)).toFixed(2)}× |`)
