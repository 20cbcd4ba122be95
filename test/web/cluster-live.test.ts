import { Effect, Schedule } from "effect"
import { writeFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { afterAll, describe, expect, it } from "vitest"
import { skipUnlessRoot } from "../support/root.js"
import { ensureClusterUser, sample } from "../worker/support.js"
import { checkout, killAll, LISTENING, spawnBin, waitForOutput } from "../e2e/node-process.js"
import { ARTIFACTS, logIn, NODE_HOST, rpcClients, startWebNode, WORKER_ADDRESS } from "./support.js"

// The website with the real match cluster: `prolo-node --layer gw,web` (website + master) and a
// worker node (`--layer user,worker`: bubblewrap jails as the cluster user, the repo's reference game).
// In chromium a contestant uploads the reference C champion, watches it compile for real,
// launches a match against another contestant's Python champion and steps through the replay
// the game server wrote.

afterAll(killAll)

const GAME = path.join(checkout, "games/reference")

describe.skipIf(skipUnlessRoot("website + cluster end to end: the worker's bwrap jails as the cluster user"))("website on the real cluster", () => {
  it("upload, real compilation, match against another's champion, replay", async () => {
    ensureClusterUser()
    const work = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-web-cluster-"))
    await fs.chmod(work, 0o755) // the jails (cluster user) reach the work directory inside
    const executor = [
      "executor:",
      `  work_dir: ${JSON.stringify(path.join(work, "work"))}`,
      "  game:",
      `    server: [/usr/bin/python3, ${JSON.stringify(path.join(GAME, "server.py"))}]`,
      `    client: [/usr/bin/python3, ${JSON.stringify(path.join(GAME, "client.py"))}]`,
      `    rules: ${JSON.stringify(path.join(GAME, "rules.txt"))}`,
      `    binds: [${JSON.stringify(GAME)}]`,
      "    server_time_ms: 1000",
      "    socket_timeout_ms: 10000"
    ].join("\n")
    const web = await startWebNode("", `${executor}\n`)
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
    try {
      const [, port = ""] = await waitForOutput(web.node, new RegExp(`workers join on ${NODE_HOST.replace(/\./g, "\\.")}:([0-9]+)`), 10_000)
      const workerEtc = path.join(work, "etc-worker")
      await fs.cp(web.dir, workerEtc, { recursive: true })
      writeFileSync(
        path.join(workerEtc, "cluster.yml"),
        `shared_secret: test-cluster-secret\nmaster: ${NODE_HOST}:${port}\nworker_name: web-worker\n${executor}\n`
      )
      const worker = spawnBin("prolo-node", ["--layer", "user,worker", "--config", workerEtc, "--listen", `${WORKER_ADDRESS}:0`])
      await waitForOutput(worker, LISTENING, 60_000)

      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const { udb } = yield* rpcClients(web.url)
            yield* udb.createUser({ login: "alice", firstname: "Alice", lastname: "L", group: "user", password: "alice-pass-1" })
            yield* udb.createUser({ login: "bob", firstname: "Bob", lastname: "M", group: "user", password: "bob-pass-1" })
          })
        )
      )
      await Effect.runPromise(
        Effect.tryPromise(() => logIn(web.url, "bob", "bob-pass-1")).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))))
      )
      // bob's Python champion and the map, through the REST API
      const auth = { authorization: `Basic ${Buffer.from("bob:bob-pass-1").toString("base64")}` }
      const form = new FormData()
      form.set("name", "pybot")
      form.set("sources", new Blob([Buffer.from(sample("python"))]), "pybot.tgz")
      const bob = (await (await fetch(`${web.url}/api/champions/`, { method: "POST", headers: auth, body: form })).json()) as { id: number }
      const map = await fetch(`${web.url}/api/maps/`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ name: "short", contents: "turns 5\ncells 5 3 8 1 9 2 7 4\n" })
      })
      expect(map.status).toBe(201)
      const mapId = ((await map.json()) as { id: number }).id

      const tgz = path.join(work, "cbot.tgz")
      writeFileSync(tgz, sample("c"))
      const context = await browser.newContext({ viewport: { width: 1000, height: 800 } })
      context.setDefaultTimeout(10_000)
      const page = await context.newPage()
      await page.goto(`${web.url}/login`)
      await page.fill('input[name="login"]', "alice")
      await page.fill('input[name="password"]', "alice-pass-1")
      await page.click('#login button[type="submit"]')
      await page.waitForSelector("#whoami")
      // the status page: the worker and its usage, from the master in the same node (bob's champion may be compiling)
      await page.goto(`${web.url}/status/`)
      for (let i = 0; i < 100 && (await page.$('#workers tr[data-worker="web-worker"]')) === null; i++) {
        await page.waitForTimeout(100)
        await page.reload()
      }
      expect(await page.textContent('#workers tr[data-worker="web-worker"]')).toMatch(/^web-worker\s*\d+ %\d+\/20/)
      expect(await page.textContent("#cluster-summary")).toMatch(/^1 worker\(s\), \d+\/20 slots busy \(\d+ %\)/)
      expect(await page.$("#running")).toBeNull() // the running tasks are for organisers
      await page.screenshot({ path: path.join(ARTIFACTS, "cluster-status.png"), fullPage: true })
      await page.goto(`${web.url}/champions/new/`)
      await page.fill('#upload input[name="name"]', "cbot")
      await page.setInputFiles('#upload input[name="sources"]', tgz)
      await page.click('#upload button[type="submit"]')
      const id = Number(/\/champions\/(\d+)\//.exec((await page.waitForURL(/\/champions\/\d+\//), page.url()))?.[1])
      await page.waitForSelector('#champion-status[data-status="ready"]', { timeout: 60_000 })
      await page.screenshot({ path: path.join(ARTIFACTS, "cluster-champion.png"), fullPage: true })
      expect(await page.textContent("#compile-log")).not.toBe("")
      // bob's compiles too (the same worker)
      await Effect.runPromise(
        Effect.tryPromise(async () => {
          const c = (await (await fetch(`${web.url}/api/champions/${bob.id}/`, { headers: auth })).json()) as { status: string }
          if (c.status !== "ready") throw new Error(c.status)
        }).pipe(Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds"))))
      )

      await page.goto(`${web.url}/matches/new/`)
      await page.selectOption('#launch select[name="champion_1"]', String(id))
      await page.selectOption('#launch select[name="champion_2"]', String(bob.id))
      await page.selectOption('#launch select[name="map"]', String(mapId))
      await page.click('#launch button[type="submit"]')
      await page.waitForSelector('#match-status[data-status="done"]', { timeout: 90_000 })
      expect(await page.textContent("#replay-turn")).toBe("turn 1 / 5")
      await page.click("#replay-next")
      await page.click("#replay-next")
      expect(await page.textContent("#replay-turn")).toBe("turn 3 / 5")
      await page.screenshot({ path: path.join(ARTIFACTS, "cluster-match.png"), fullPage: true })
      const scores = await page.$$eval("#players .score", (cells) => cells.map((c) => c.textContent))
      expect(scores.every((s) => s !== null && /^\d+$/.test(s))).toBe(true)
      await context.close()
    } finally {
      await browser.close()
      await killAll()
      await fs.rm(web.dir, { recursive: true, force: true })
      await fs.rm(work, { recursive: true, force: true })
    }
  }, 240_000)
})
