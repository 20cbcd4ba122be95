// `npm run bench:start`: how fast the binaries start and stop, from the bundle in dist/ (built
// first when older than a source file, the rule bin/launch.js applies), against bare node
// peers started the same way in the same process tree:
//   `prolo-node --help` and `prolo --help`            vs `node -e ''`
//   `prolo-node --layer all` (fresh PROLO_DATA_DIR):
//      first log line on stderr                        vs `node -e ''`
//      `/__ping` answers `pong`                        vs a bare node http server answering
//      SIGTERM -> exit (must be status 0)              vs the same bare server
// Rounds run every measurement in turn, so machine load hits prolo and peers alike: trust the
// ratios more than the absolute figures. Knob (environment): ROUNDS [5].
// Every process started is killed on the way out, also on failure or Ctrl-C.
import * as fsp from "node:fs/promises"
import { request } from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { checkout, killAll, type Spawned, spawnBin, spawnNode, waitForOutput } from "../test/e2e/node-process.js"
import { bundleIsFresh, ensureBundle } from "../test/support/bundle.js"
import { freePort, pidsWithArg } from "../test/support/processes.js"

const ROUNDS = Number(process.env["ROUNDS"] ?? "5")
const BUDGET_FIRST_LINE_MS = 1500 // the start-up budget: first log line under 1.5 s
const START_BOUND_MS = 120_000 // only keeps a hung start from hanging the bench
const CONFIG = path.join(checkout, "etc/prologin")
// The bench measures the bundle; a developer's PROLO_FROM_SOURCE=1 would measure tsx instead.
const ENV = { PROLO_FROM_SOURCE: undefined }

// ---- the bundle -------------------------------------------------------------------------

const ensureFreshBundle = async (): Promise<void> => {
  const t0 = performance.now()
  if (await ensureBundle()) console.log(`dist/ was older than the sources: rebuilt in ${Math.round(performance.now() - t0)} ms`)
}

// ---- measuring one process --------------------------------------------------------------

const since = (t0: number) => performance.now() - t0

/** Wall time from spawn to exit; the process must exit 0. */
const runToExit = async (what: string, spawn: () => Spawned): Promise<number> => {
  const t0 = performance.now()
  const p = spawn()
  const exitAt = new Promise<number>((resolve) => p.child.once("exit", () => resolve(since(t0))))
  const code = await p.exited
  if (code !== 0) throw new Error(`${what} exited with ${code}:\n${p.stderr}${p.stdout}`)
  return exitAt
}

/** One GET of /__ping: true if it answers 200 `pong` (false when refused, 503 while starting, or slow). */
const pingOnce = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/__ping", agent: false, timeout: 2000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (body += c))
      res.on("end", () => resolve(res.statusCode === 200 && body === "pong"))
      res.on("error", () => resolve(false))
    })
    req.on("timeout", () => req.destroy())
    req.on("error", () => resolve(false))
    req.end()
  })

/** Polls /__ping every 10 ms until it answers pong; fails if the process ends first. */
const pongAfter = async (p: Spawned, port: number, t0: number): Promise<number> => {
  let ended = false
  void p.exited.then(() => (ended = true))
  while (since(t0) < START_BOUND_MS) {
    if (await pingOnce(port)) return since(t0)
    if (ended) throw new Error(`ended before answering /__ping:\n${p.stderr}${p.stdout}`)
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no pong on port ${port} within ${START_BOUND_MS} ms:\n${p.stderr}${p.stdout}`)
}

/** SIGTERM, then the time until the process is gone and how it ended. */
const stop = async (p: Spawned): Promise<{ ms: number; code: number | string }> => {
  const t0 = performance.now()
  const gone = new Promise<number>((resolve) => p.child.once("exit", () => resolve(since(t0))))
  p.child.kill("SIGTERM")
  const code = await Promise.race([
    p.exited,
    new Promise<string>((resolve) => setTimeout(() => resolve("no exit within 60 s"), 60_000).unref())
  ])
  return { ms: typeof code === "string" && code.startsWith("no exit") ? since(t0) : await gone, code }
}

// A bare node HTTP server answering like /__ping: the peer of the node's readiness and shutdown.
const BARE_SERVER = `require("node:http").createServer((q, s) => s.end("pong")).listen(Number(process.argv[1]), "127.0.0.1")`

interface Round {
  nodeE: number
  nodeHelp: number
  proloHelp: number
  bareReady: number
  bareStop: number
  firstLine: number
  listening: number
  pong: number
  stop: number
}

const dataDirs = new Set<string>()

const round = async (): Promise<Round> => {
  const nodeE = await runToExit("node -e ''", () => spawnNode(["-e", ""], ENV))
  const nodeHelp = await runToExit("prolo-node --help", () => spawnBin("prolo-node", ["--help"], ENV))
  const proloHelp = await runToExit("prolo --help", () => spawnBin("prolo", ["--help"], ENV))

  const barePort = await freePort()
  const bareT0 = performance.now()
  const bare = spawnNode(["-e", BARE_SERVER, String(barePort)], ENV)
  const bareReady = await pongAfter(bare, barePort, bareT0)
  const bareStop = (await stop(bare)).ms

  const data = await fsp.mkdtemp(path.join(os.tmpdir(), "prolo-bench-start-"))
  dataDirs.add(data)
  await fsp.chmod(data, 0o755) // the embedded PostgreSQL runs as `postgres` when we are root
  const port = await freePort()
  const t0 = performance.now()
  const node = spawnBin("prolo-node", ["--layer", "all", "--listen", `127.0.0.1:${port}`, "--config", CONFIG], {
    ...ENV,
    PROLO_DATA_DIR: data
  })
  const firstLineAt = waitForOutput(node, /\n/, START_BOUND_MS).then(() => since(t0))
  const listeningAt = waitForOutput(node, /prolo-node listening on /, START_BOUND_MS).then(() => since(t0))
  // awaited below; if the start fails first, the pong wait reports it, not an unhandled rejection
  for (const p of [firstLineAt, listeningAt]) p.catch(() => undefined)
  const pong = await pongAfter(node, port, t0)
  const [firstLine, listening] = await Promise.all([firstLineAt, listeningAt])
  const stopped = await stop(node)
  if (stopped.code !== 0) throw new Error(`prolo-node after SIGTERM: exit ${stopped.code}, expected 0:\n${node.stderr}`)
  const left = await pidsWithArg(path.join(data, "db"))
  if (left.length > 0) throw new Error(`prolo-node exited but left its PostgreSQL running: pids ${left.join(", ")}`)
  await fsp.rm(data, { recursive: true, force: true })
  dataDirs.delete(data)
  return { nodeE, nodeHelp, proloHelp, bareReady, bareStop, firstLine, listening, pong, stop: stopped.ms }
}

// ---- cleanup ----------------------------------------------------------------------------

const cleanup = async (): Promise<void> => {
  await killAll()
  for (const data of dataDirs) {
    // the node's watchdog stops its PostgreSQL when the node is killed; make sure of it
    for (const pid of await pidsWithArg(path.join(data, "db"))) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
    await fsp.rm(data, { recursive: true, force: true })
  }
  dataDirs.clear()
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void cleanup().finally(() => process.exit(130))
  })
}

// ---- report -----------------------------------------------------------------------------

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
const max = (xs: ReadonlyArray<number>) => Math.max(...xs)
const ms = (x: number) => `${Math.round(x)}`

const report = (rounds: ReadonlyArray<Round>) => {
  const col = (k: keyof Round) => rounds.map((r) => r[k])
  const rows: ReadonlyArray<readonly [string, keyof Round, keyof Round | undefined, string]> = [
    ["prolo-node --help", "nodeHelp", "nodeE", "node -e ''"],
    ["prolo --help", "proloHelp", "nodeE", "node -e ''"],
    ["--layer all: first log line", "firstLine", "nodeE", "node -e ''"],
    ["--layer all: listening line", "listening", undefined, ""],
    ["--layer all: /__ping pong", "pong", "bareReady", "bare http: pong"],
    ["--layer all: SIGTERM -> exit 0", "stop", "bareStop", "bare http: SIGTERM -> gone"]
  ]
  const header = ["measure (ms)", "median", "max", "peer", "median", "max", "ratio"]
  const lines = rows.map(([name, k, peer, peerName]) => [
    name,
    ms(median(col(k))),
    ms(max(col(k))),
    peerName,
    peer === undefined ? "" : ms(median(col(peer))),
    peer === undefined ? "" : ms(max(col(peer))),
    peer === undefined ? "" : `${(median(col(k)) / median(col(peer))).toFixed(1)}x`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const fmt = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  console.log(`\nstart-up from dist/, ${rounds.length} rounds, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} on ${os.availableParallelism()} cores`)
  console.log(fmt(header))
  for (const l of lines) console.log(fmt(l))
  const first = col("firstLine")
  const verdict = max(first) < BUDGET_FIRST_LINE_MS ? "every round within" : median(first) < BUDGET_FIRST_LINE_MS ? "median within, some rounds over" : "OVER"
  console.log(
    `\nfirst log line: median ${ms(median(first))} ms, max ${ms(max(first))} ms — ${verdict} the ${BUDGET_FIRST_LINE_MS} ms budget`
  )
}

const main = async () => {
  await ensureFreshBundle()
  // Warm the file cache so that round 1 is not a cold-disk outlier of its own.
  await runToExit("node -e ''", () => spawnNode(["-e", ""], ENV))
  await runToExit("prolo-node --help", () => spawnBin("prolo-node", ["--help"], ENV))
  const rounds: Array<Round> = []
  let discarded = 0
  while (rounds.length < ROUNDS) {
    const r = await round()
    // A source edited mid-round sends bin/launch.js to tsx: that round measured the wrong thing.
    if (!bundleIsFresh()) {
      if (++discarded > ROUNDS) throw new Error("the sources keep changing under the bench: dist/ goes stale every round")
      console.log("a source file changed during the round: discarded, rebuilding")
      await ensureFreshBundle()
      continue
    }
    rounds.push(r)
    console.log(
      `round ${rounds.length}: --help ${ms(r.nodeHelp)} ms, first line ${ms(r.firstLine)} ms, pong ${ms(r.pong)} ms, stop ${ms(r.stop)} ms (node -e ${ms(r.nodeE)} ms, bare http ${ms(r.bareReady)} ms)`
    )
  }
  report(rounds)
}

main()
  .then(cleanup)
  .catch(async (error: unknown) => {
    await cleanup()
    console.error(`bench:start failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  })
