import { Effect, Redacted } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { gunzipSync } from "node:zlib"
import pg from "pg"
import { makeFileStore } from "../../src/actors/concours/files.js"
import { createTestDatabase } from "../support/pg.js"
import { skipUnlessRoot } from "../support/root.js"
import { ensureClusterUser, sample } from "../worker/support.js"
import { checkout, killAll, LISTENING, spawnBin, waitForOutput } from "./node-process.js"

// The cluster end to end with the real parts: a master node (`prolo-node --layer web`) and a
// worker node (`--layer user,worker`, the live executor: bubblewrap jails as the cluster user, the
// repo's reference game) on a real PostgreSQL. Two sample champions (C and Python) are queued,
// compiled on the worker, then a match between them runs in the sandbox; scores, logs, dump and
// replay are recorded and readable. `prolo cluster status` shows the worker; `prolo cluster
// requeue` refuses what is not failed.

afterEach(killAll)

const runCli = async (args: ReadonlyArray<string>) => {
  const cli = spawnBin("prolo", args)
  const code = await cli.exited
  return { code, stdout: cli.stdout, stderr: cli.stderr }
}

const poll = async <A>(what: string, probe: () => Promise<A>, ok: (a: A) => boolean, ms: number): Promise<A> => {
  const end = Date.now() + ms
  for (;;) {
    const a = await probe()
    if (ok(a)) return a
    if (Date.now() > end) throw new Error(`never: ${what} (last: ${JSON.stringify(a)})`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe.skipIf(skipUnlessRoot("cluster end to end: the worker's bwrap jails as the cluster user"))("match cluster end to end", () => {
  it("two champions compile on a worker node, a match between them runs in the sandbox, results recorded and readable", async () => {
    ensureClusterUser()
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-cluster-game-"))
    await fs.chmod(root, 0o755) // the jails (cluster user) must reach the work directory inside
    try {
      const url = Redacted.value(await Effect.runPromise(createTestDatabase))
      const etc = path.join(root, "etc")
      mkdirSync(etc)
      const example = path.join(checkout, "etc", "prologin")
      for (const name of readdirSync(example)) if (name.endsWith(".yml")) copyFileSync(path.join(example, name), path.join(etc, name))
      writeFileSync(path.join(etc, "node.yml"), `database:\n  url: ${JSON.stringify(url)}\n`)
      const filesDir = path.join(root, "files")
      const game = path.join(checkout, "games/reference")
      writeFileSync(
        path.join(etc, "cluster.yml"),
        [
          "shared_secret: game-suite-secret",
          "listen: 127.0.13.2:0",
          `files_dir: ${JSON.stringify(filesDir)}`,
          "executor:",
          `  work_dir: ${JSON.stringify(path.join(root, "work"))}`,
          "  game:",
          `    server: [/usr/bin/python3, ${JSON.stringify(path.join(game, "server.py"))}]`,
          `    client: [/usr/bin/python3, ${JSON.stringify(path.join(game, "client.py"))}]`,
          `    rules: ${JSON.stringify(path.join(game, "rules.txt"))}`,
          `    binds: [${JSON.stringify(game)}]`,
          "    server_time_ms: 1000",
          "    socket_timeout_ms: 10000"
        ].join("\n") + "\n"
      )
      const master = spawnBin("prolo-node", ["--layer", "web", "--config", etc, "--listen", "127.0.13.2:0"])
      const [, base = ""] = await waitForOutput(master, LISTENING, 60_000)
      const [, port = ""] = await waitForOutput(master, /workers join on 127\.0\.13\.2:([0-9]+)/, 10_000)
      // the worker dials the port the master picked
      const workerEtc = path.join(root, "etc-worker")
      await fs.cp(etc, workerEtc, { recursive: true })
      writeFileSync(
        path.join(workerEtc, "cluster.yml"),
        (await fs.readFile(path.join(etc, "cluster.yml"), "utf8")).replace("listen: 127.0.13.2:0", `master: 127.0.13.2:${port}\nworker_name: game-worker`)
      )
      const worker = spawnBin("prolo-node", ["--layer", "user,worker", "--config", workerEtc, "--listen", "127.0.13.3:0"])
      await waitForOutput(worker, LISTENING, 60_000)

      const db = new pg.Client({ connectionString: url })
      await db.connect()
      try {
        const files = makeFileStore(filesDir)
        const put = (bytes: Uint8Array) => Effect.runPromise(files.put(bytes))
        const c = await db.query<{ id: number }>(`INSERT INTO champion (name, author, sources_digest) VALUES ('cbot', 'alice', $1) RETURNING id`, [await put(sample("c"))])
        const p = await db.query<{ id: number }>(`INSERT INTO champion (name, author, sources_digest) VALUES ('pybot', 'bob', $1) RETURNING id`, [await put(sample("python"))])
        const champs = await poll(
          "both champions compiled",
          async () => (await db.query<{ status: string; compiled_digest: string | null; log_digest: string | null }>(`SELECT status, compiled_digest, log_digest FROM champion ORDER BY id`)).rows,
          (rows) => rows.every((r) => r.status !== "new" && r.status !== "pending"),
          120_000
        )
        expect(champs.map((r) => r.status), `master:\n${master.stderr.slice(-2000)}\nworker:\n${worker.stderr.slice(-2000)}`).toEqual(["ready", "ready"])
        const log = new TextDecoder().decode(await Effect.runPromise(files.get(champs[0]!.log_digest!)))
        expect(log.length).toBeGreaterThan(0)

        const m = await db.query<{ id: number }>(`INSERT INTO match (author, status) VALUES ('orga', 'creating') RETURNING id`)
        const matchId = m.rows[0]!.id
        await db.query(`INSERT INTO match_player (match_id, champion_id) VALUES ($1, $2), ($1, $3)`, [matchId, c.rows[0]!.id, p.rows[0]!.id])
        await db.query(`UPDATE match SET status = 'new' WHERE id = $1`, [matchId])
        const [row] = await poll(
          "the match ended",
          async () =>
            (await db.query<{ status: string; failure: string | null; dump_digest: string | null; replay_digest: string | null; server_log_digest: string | null }>(
              `SELECT status, failure, dump_digest, replay_digest, server_log_digest FROM match WHERE id = $1`,
              [matchId]
            )).rows,
          (rows) => rows[0]?.status === "done" || rows[0]?.status === "failed",
          120_000
        )
        expect(row!.status, `${row!.failure}\nworker:\n${worker.stderr.slice(-2000)}`).toBe("done")
        const scores = (await db.query<{ score: number | null; nb_timeout: number | null; log_digest: string | null }>(`SELECT score, nb_timeout, log_digest FROM match_player WHERE match_id = $1 ORDER BY id`, [matchId])).rows
        expect(scores.every((s) => typeof s.score === "number" && s.nb_timeout !== null)).toBe(true)
        const dump = gunzipSync(await Effect.runPromise(files.get(row!.dump_digest!)))
        expect(dump.length).toBeGreaterThan(0)
        expect((await Effect.runPromise(files.get(row!.replay_digest!))).length).toBeGreaterThan(0)

        // the metrics the alerts use, on the master's and the worker's /metrics
        const metrics = await (await fetch(`${base}/metrics`)).text()
        expect(metrics).toMatch(/\nprolo_cluster_queue_depth\{kind="match"\} [01]\n/) // refreshed every second
        for (const name of ["masternode_workers 1", "masternode_task_dispatch_total 3", "prolo_cluster_lease_expiries_total 0", "prolo_cluster_late_results_dropped_total 0", "prolo_cluster_redispatches_total 0"]) {
          expect(metrics).toContain(`\n${name}\n`)
        }
        const [, workerBase = ""] = worker.stderr.match(LISTENING) ?? []
        const workerMetrics = await (await fetch(`${workerBase}/metrics`)).text()
        expect(workerMetrics).toContain("\nworkernode_slots 20\n")
        expect(workerMetrics).toMatch(/\nworkernode_compile_champion_summary_count 2\n/)
        expect(workerMetrics).toMatch(/\nworkernode_run_match_count_count 1\n/)

        // the operators' view and requeue, through the CLI
        const status = await runCli(["--node", base, "--config", etc, "cluster", "status"])
        expect(status.stdout).toMatch(/^1 worker\(s\), 0\/20 slots busy; queue: 0 compilation\(s\), 0 match\(es\); 0 running/)
        expect(status.stdout).toMatch(/game-worker\s+20\s+20\s+0/)
        const notFailed = await runCli(["--node", base, "--config", etc, "cluster", "requeue", String(matchId)])
        expect(notFailed.code).toBe(2)
        expect(notFailed.stderr).toBe(`prolo cluster: match ${matchId} is done: only failed (or error) tasks are requeued\n`)
        const unknown = await runCli(["--node", base, "--config", etc, "cluster", "requeue", "champion:4242"])
        expect(unknown.stderr).toBe("prolo cluster: no champion 4242\n")
        const bad = await runCli(["--node", base, "--config", etc, "cluster", "requeue", "twelve"])
        expect(bad.stderr).toBe('prolo cluster: task "twelve": expected a match id (12, match:12) or champion:ID\n')
      } finally {
        await db.end()
      }
    } finally {
      await killAll()
      await fs.rm(root, { recursive: true, force: true })
    }
  }, 300_000)
})
