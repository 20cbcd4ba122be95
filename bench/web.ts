// The website under load from one client: p50/p99 of the match list page, a champion's detail
// page and the REST match list with 10 000 matches in the database (embedded PostgreSQL,
// `prolo-node --layer gw,web`), against a bare node:http handler returning the same bytes from
// memory in this process (the peer: what HTTP alone costs). Goal: p99 < 50 ms for the pages.
//   npm run bench:web            (PROLO_BENCH_N=… requests per endpoint, default 300;
//                                 PROLO_WEB_NODE_CPU_PROF=DIR writes the node's V8 CPU profile there;
//                                 PROLO_BENCH_EXPLAIN=1 also prints the list queries' plans and the page query's own time)
import { Effect, Redacted, Schedule } from "effect"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { gzipSync } from "node:zlib"
import pg from "pg"
import { makeFileStore } from "../src/actors/concours/files.js"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"
import { killAll } from "../test/e2e/node-process.js"
import { logIn, NODE_HOST, rpcClients, startWebNodeOn } from "../test/web/node.js"
import { benchLog } from "./support.js"

const N = Number(process.env.PROLO_BENCH_N ?? 300)
const MATCHES = 10_000
const log = benchLog("web")

const percentile = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN
const fmt = (ms: number) => `${ms.toFixed(2)} ms`

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const get = (url: string, headers: Record<string, string>) =>
  new Promise<{ status: number; body: Buffer<ArrayBufferLike> }>((resolve, reject) => {
    http
      .get(url, { agent, headers }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
      })
      .on("error", reject)
  })

const measure = async (url: string, headers: Record<string, string>) => {
  for (let i = 0; i < 20; i++) await get(url, headers) // warm-up
  const samples: Array<number> = []
  let last: { status: number; body: Buffer<ArrayBufferLike> } = { status: 0, body: Buffer.alloc(0) }
  for (let i = 0; i < N; i++) {
    const t0 = performance.now()
    last = await get(url, headers)
    samples.push(performance.now() - t0)
  }
  if (last.status !== 200) throw new Error(`${url}: ${last.status} ${last.body.toString().slice(0, 200)}`)
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), body: last.body }
}

/** The peer: the same bytes from memory, no routing, no database. */
const bareServer = (body: Buffer, contentType: string) =>
  new Promise<{ url: string; close: () => void }>((resolve) => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": contentType, "content-length": body.length })
      res.end(body)
    })
    server.listen(0, NODE_HOST, () => {
      const { port } = server.address() as { port: number }
      resolve({ url: `http://${NODE_HOST}:${port}/`, close: () => server.close() })
    })
  })

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-bench-web-"))
      await fs.chmod(dir, 0o755)
      return dir
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )
  const embedded = yield* startEmbeddedPostgres({ dataDir: path.join(root, "db") })
  const database = embedded.url("postgres")
  const web = yield* Effect.acquireRelease(
    Effect.promise(() => startWebNodeOn(database)),
    () => Effect.promise(killAll)
  )
  log(`node up at ${web.url}`)
  yield* Effect.scoped(
    Effect.gen(function* () {
      const { udb } = yield* rpcClients(web.url)
      for (let i = 0; i < 20; i++) yield* udb.createUser({ login: `user${i}`, firstname: "User", lastname: `N${i}`, group: "user", password: `password-${i}` })
    })
  )
  const store = makeFileStore(path.join(web.dir, "var/concours-files"))
  const sources = yield* store.put(gzipSync(Buffer.alloc(1024)))
  const compileLog = yield* store.put(new TextEncoder().encode("Success!\n".repeat(50)))
  const client = new pg.Client({ connectionString: Redacted.value(database) })
  yield* Effect.promise(() => client.connect())
  const t0 = performance.now()
  yield* Effect.promise(async () => {
    await client.query(
      `INSERT INTO champion (name, author, status, sources_digest, compiled_digest, log_digest)
       SELECT 'champ' || i, 'user' || (i % 20), 'ready', $1, $1, $2 FROM generate_series(1, 100) i`,
      [sources, compileLog]
    )
    await client.query(
      `INSERT INTO match (author, status, priority, created_at)
       SELECT 'user' || (i % 20), 'done', 700, now() - (i || ' seconds')::interval FROM generate_series(1, ${MATCHES}) i`
    )
    await client.query(
      `INSERT INTO match_player (match_id, champion_id, score, nb_timeout)
       SELECT m.id, 1 + ((m.id * 7 + k) % 100), (m.id * 13 + k) % 100, 0 FROM match m, generate_series(0, 1) k`
    )
    await client.query("ANALYZE")
    if (process.env.PROLO_BENCH_EXPLAIN !== undefined) {
      // three forms of the list page's statement: the join + GROUP BY service.ts had (the planner hashes
      // all of match), the ids as an array it has now, and a LATERAL one with the count inside (tried: slower)
      const players = `json_agg(json_build_object('id', p.id, 'champion', p.champion_id, 'name', c.name, 'author', c.author, 'score', p.score) ORDER BY p.id)`
      const forms = {
        "join + GROUP BY (the old form)": `WITH page AS (SELECT m.id FROM match m WHERE true ORDER BY m.id DESC LIMIT 100 OFFSET 0)
          SELECT m.id, m.author, m.status, m.created_at, coalesce(${players} FILTER (WHERE p.id IS NOT NULL), '[]') AS players
          FROM page JOIN match m ON m.id = page.id LEFT JOIN match_player p ON p.match_id = m.id LEFT JOIN champion c ON c.id = p.champion_id
          GROUP BY m.id ORDER BY m.id DESC`,
        "= ANY(ARRAY(page)) (service.ts now)": `SELECT m.id, m.author, m.status, m.created_at, coalesce(${players} FILTER (WHERE p.id IS NOT NULL), '[]') AS players
          FROM match m LEFT JOIN match_player p ON p.match_id = m.id LEFT JOIN champion c ON c.id = p.champion_id
          WHERE m.id = ANY(ARRAY(SELECT m.id FROM match m WHERE true ORDER BY m.id DESC LIMIT 100 OFFSET 0))
          GROUP BY m.id ORDER BY m.id DESC`,
        "lateral + count in one statement": `WITH page AS (SELECT m.id FROM match m WHERE true ORDER BY m.id DESC LIMIT 100 OFFSET 0)
          SELECT (SELECT count(*) FROM match m WHERE true)::int AS total, m.id, m.author, m.status, m.created_at, coalesce(pl.players, '[]') AS players
          FROM page JOIN match m ON m.id = page.id
          LEFT JOIN LATERAL (SELECT ${players} AS players FROM match_player p LEFT JOIN champion c ON c.id = p.champion_id WHERE p.match_id = m.id) pl ON true
          ORDER BY m.id DESC`
      }
      for (const [name, q] of Object.entries(forms)) {
        const times: Array<number> = []
        for (let i = 0; i < 200; i++) {
          const t = performance.now()
          await client.query(q)
          times.push(performance.now() - t)
        }
        console.log(`match page query alone, ${name}: p50 ${fmt(percentile(times, 0.5))} p99 ${fmt(percentile(times, 0.99))}`)
        const plan = await client.query(`EXPLAIN ANALYZE ${q}`)
        console.log(plan.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n"))
      }
      for (const q of [
        "SELECT count(*)::int AS n FROM match m WHERE true",
        "SELECT m.id FROM match m WHERE true ORDER BY m.id DESC LIMIT 100 OFFSET 0",
        `SELECT m.id, coalesce(json_agg(json_build_object('id', p.id, 'name', c.name) ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '[]') AS players
         FROM match m LEFT JOIN match_player p ON p.match_id = m.id LEFT JOIN champion c ON c.id = p.champion_id
         WHERE m.id IN (SELECT id FROM match ORDER BY id DESC LIMIT 100) GROUP BY m.id ORDER BY m.id DESC`
      ]) {
        const plan = await client.query(`EXPLAIN ANALYZE ${q}`)
        console.log(plan.rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n"))
      }
    }
    await client.end()
  })
  log(`seeded 100 champions and ${MATCHES} matches (${MATCHES * 2} players) in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  const cookie = yield* Effect.tryPromise(() => logIn(web.url, "user3", "password-3")).pipe(
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
  )
  const headers = { cookie }
  const rows: Array<[string, { p50: number; p99: number }, { p50: number; p99: number }]> = []
  for (const [name, pathname] of [
    ["match list page (100 rows)", "/matches/"],
    ["champion detail page", "/champions/42/"],
    ["REST match list (10 rows)", "/api/matches/"]
  ] as const) {
    const ours = yield* Effect.promise(() => measure(`${web.url}${pathname}`, headers))
    const peer = yield* Effect.promise(async () => {
      const bare = await bareServer(ours.body, pathname.startsWith("/api") ? "application/json" : "text/html")
      try {
        return await measure(bare.url, {})
      } finally {
        bare.close()
      }
    })
    rows.push([name, ours, peer])
  }
  console.log(`bench:web — ${N} sequential requests per endpoint, keep-alive, ${MATCHES} matches in the database`)
  for (const [name, ours, peer] of rows) {
    console.log(
      `${name.padEnd(28)} p50 ${fmt(ours.p50)}  p99 ${fmt(ours.p99)}   bare node:http same bytes p50 ${fmt(peer.p50)} p99 ${fmt(peer.p99)}   ratio p50 ×${(ours.p50 / peer.p50).toFixed(1)} p99 ×${(ours.p99 / peer.p99).toFixed(1)}`
    )
  }
  if (process.env.PROLO_WEB_NODE_CPU_PROF !== undefined) {
    // a clean stop, so that the node writes its CPU profile (killAll's SIGKILL would lose it)
    web.node.child.kill("SIGTERM")
    yield* Effect.promise(() => web.node.exited)
    log(`CPU profile of the node in ${process.env.PROLO_WEB_NODE_CPU_PROF}`)
  }
  const pagesP99 = Math.max(rows[0]![1].p99, rows[1]![1].p99)
  console.log(`pages p99 ${fmt(pagesP99)}: ${pagesP99 < 50 ? "within" : "OVER"} the 50 ms goal`)
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
