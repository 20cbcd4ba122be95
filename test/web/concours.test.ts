import { Effect, Redacted, Schedule } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { gzipSync } from "node:zlib"
import pg from "pg"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFileStore } from "../../src/actors/concours/files.js"
import { checkout, killAll } from "../e2e/node-process.js"
import { ARTIFACTS, csrfOf, logIn, request, rpcClients, startWebNode, type WebNode } from "./support.js"

// Contestants on the concours pages, on a real node (gw + web, real PostgreSQL). This branch
// has the tables (0007) and the file store but not yet the master: the test plays the master,
// moving champions and matches through their statuses in the tables and storing the files
// (compilation log, dump, replay, player logs) as the master does.

const ALICE = { login: "alice", password: "alice-pass-1" }
const BOB = { login: "bob", password: "bob-pass-1" }
const MAX_UPLOAD = 20_000

let web: WebNode
let browser: Browser
let db: pg.Client
let scratch: string

const run = <A, E>(effect: Effect.Effect<A, E, import("effect").Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))
const files = () => makeFileStore(path.join(web.dir, "var/concours-files"))
const put = (bytes: Uint8Array) => Effect.runPromise(files().put(bytes))

/** A champion archive made with tar, as a contestant would. */
const tgz = (entries: Record<string, string>, name: string): string => {
  const dir = mkdtempSync(path.join(scratch, "champion-"))
  for (const [file, text] of Object.entries(entries)) writeFileSync(path.join(dir, file), text)
  const out = path.join(scratch, `${name}.tgz`)
  execFileSync("tar", ["-czf", out, "-C", dir, ...Object.keys(entries)])
  return out
}

const C_CHAMPION = { _lang: "c\n", "champion.c": "int play_turn(int turn) { return turn % 8; }\n" }

const basic = (who: { login: string; password: string }) => `Basic ${Buffer.from(`${who.login}:${who.password}`).toString("base64")}`

/** The master's part: compile result. */
const compiled = async (id: number) => {
  const log = await put(new TextEncoder().encode("- champion.c\n    cc -shared champion.c\nSuccess!\n"))
  const so = await put(new Uint8Array([1, 2, 3]))
  await db.query("UPDATE champion SET status = 'pending', lease_worker = 'w1', lease_expiry = 1, attempt = 1 WHERE id = $1", [id])
  await db.query("UPDATE champion SET status = 'ready', lease_worker = NULL, lease_expiry = NULL, compiled_digest = $2, log_digest = $3 WHERE id = $1", [id, so, log])
}

/** The master's part: a reference-game match result (dump, replay, scores, logs). */
const finished = async (matchId: number) => {
  const turns = [0, 1, 2].map((turn) => ({ turn, cells: [5 - turn, 3, 8], scores: [turn * 5, turn * 3] }))
  const dump = await put(gzipSync(JSON.stringify({ turns, final: { cells: [2, 3, 8], scores: [15, 9] } })))
  const replay = await put(gzipSync("reference-game replay v1\n0 0 1\n1 0 1\n2 2 2\n"))
  const log = await put(new TextEncoder().encode("alice's champion log\n"))
  const players = await db.query("SELECT id FROM match_player WHERE match_id = $1 ORDER BY id", [matchId])
  for (const [i, row] of players.rows.entries()) {
    await db.query("UPDATE match_player SET score = $2, nb_timeout = 0, log_digest = $3 WHERE id = $1", [row.id, i === 0 ? 15 : 9, log])
  }
  await db.query("UPDATE match SET status = 'done', dump_digest = $2, replay_digest = $3 WHERE id = $1", [matchId, dump, replay])
}

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "prolo-concours-"))
  const validator = path.join(scratch, "validate-map.sh")
  writeFileSync(validator, '#!/bin/sh\nmap=$(cat)\ncase "$map" in\n  *slow*) exec sleep 30 ;;\n  *bad*) echo "line 1: unknown cell kind" >&2; exit 1 ;;\nesac\nexit 0\n')
  chmodSync(validator, 0o755)
  web = await startWebNode(
    `concours:\n  max_upload_bytes: ${MAX_UPLOAD}\n  map_validator: ${validator}\n  map_validator_timeout_seconds: 0.5\n`
  )
  db = new pg.Client({ connectionString: Redacted.value(web.database) })
  await db.connect()
  await run(
    Effect.gen(function* () {
      const { udb } = yield* rpcClients(web.url)
      yield* udb.createUser({ login: ALICE.login, firstname: "Alice", lastname: "Liddell", group: "user", password: ALICE.password })
      yield* udb.createUser({ login: BOB.login, firstname: "Bob", lastname: "Morane", group: "user", password: BOB.password })
    })
  )
  await run(
    Effect.tryPromise(() => logIn(web.url, BOB.login, BOB.password)).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))))
  )
  await db.query("INSERT INTO map (name, author, contents, official) VALUES ('default', 'orga', 'turns 3\ncells 5 3 8\n', true)")
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await db?.end()
  await killAll()
  if (web !== undefined) rmSync(web.dir, { recursive: true, force: true })
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
})

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `concours-${name}.png`), fullPage: true })

const championCount = async () => Number((await db.query("SELECT count(*) AS n FROM champion")).rows[0].n)

describe("concours in chromium", () => {
  it("alice uploads a C champion, sees it compile, fights bob's champion and steps through the replay", async () => {
    // bob's champion, through the REST API as a script would
    const form = new FormData()
    form.set("name", "bobot")
    form.set("sources", new Blob([Buffer.from(execFileSync("cat", [tgz(C_CHAMPION, "bob")]))]), "bob.tgz")
    const created = await fetch(`${web.url}/api/champions/`, { method: "POST", headers: { authorization: basic(BOB) }, body: form })
    expect(created.status).toBe(201)
    const bobChampion = (await created.json()) as { id: number; author: { username: string }; status: string }
    expect(bobChampion).toMatchObject({ author: { username: "bob" }, status: "new", name: "bobot" })
    await compiled(bobChampion.id)

    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } })
    context.setDefaultTimeout(8000)
    try {
      const page = await context.newPage()
      await page.goto(`${web.url}/login`)
      await page.fill('input[name="login"]', ALICE.login)
      await page.fill('input[name="password"]', ALICE.password)
      await page.click('#login button[type="submit"]')
      await page.waitForSelector("#whoami")
      await shot(page, "home")

      await page.goto(`${web.url}/champions/new/`)
      await page.fill('#upload input[name="name"]', "alicebot")
      await page.setInputFiles('#upload input[name="sources"]', tgz(C_CHAMPION, "alice"))
      await shot(page, "upload")
      await page.click('#upload button[type="submit"]')
      await page.waitForSelector('#champion-status[data-status="new"]')
      const id = Number(/\/champions\/(\d+)\//.exec(page.url())?.[1])
      await compiled(id)
      // the page polls while the champion waits: it shows ready and the log without a click
      await page.waitForSelector('#champion-status[data-status="ready"]', { timeout: 5000 })
      expect(await page.textContent("#compile-log")).toContain("Success!")
      await shot(page, "champion")

      await page.goto(`${web.url}/matches/new/`)
      await page.selectOption('#launch select[name="champion_1"]', String(id))
      await page.selectOption('#launch select[name="champion_2"]', String(bobChampion.id))
      await page.click('#launch button[type="submit"]')
      await page.waitForSelector('#match-status[data-status="new"]')
      const matchId = Number(/\/matches\/(\d+)\//.exec(page.url())?.[1])
      const priority = await db.query("SELECT priority FROM match WHERE id = $1", [matchId])
      expect(priority.rows[0].priority).toBe(700)
      await finished(matchId)
      await page.waitForSelector('#match-status[data-status="done"]', { timeout: 5000 })
      expect(await page.textContent("#players")).toContain("15")
      expect(await page.textContent("#replay-turn")).toBe("turn 1 / 3")
      await page.click("#replay-next")
      expect(await page.textContent("#replay-turn")).toBe("turn 2 / 3")
      expect(await page.textContent("#replay-scores")).toContain("alicebot: 5")
      await page.click("#replay-next")
      expect(await page.textContent("#replay-board")).toContain("← alicebot, bobot")
      await shot(page, "match")
      await page.click("#replay-prev")
      expect(await page.textContent("#replay-turn")).toBe("turn 2 / 3")

      // bad input, each a message on the page and nothing stored
      const before = await championCount()
      await page.goto(`${web.url}/champions/new/`)
      await page.fill('#upload input[name="name"]', "alicebot")
      await page.setInputFiles('#upload input[name="sources"]', tgz(C_CHAMPION, "again"))
      await page.click('#upload button[type="submit"]')
      await page.waitForSelector(".error:has-text('already have a champion named')")
      await page.fill('#upload input[name="name"]', "nolang")
      await page.setInputFiles('#upload input[name="sources"]', tgz({ "champion.c": "int x;\n" }, "nolang"))
      await page.click('#upload button[type="submit"]')
      await page.waitForSelector(".error:has-text('no _lang file')")
      await page.fill('#upload input[name="name"]', "huge")
      const big = path.join(scratch, "huge.tgz")
      writeFileSync(big, Buffer.alloc(MAX_UPLOAD + 1000, 7))
      await page.setInputFiles('#upload input[name="sources"]', big)
      await page.click('#upload button[type="submit"]')
      await page.waitForSelector(`.error:has-text('over the limit of ${MAX_UPLOAD} bytes')`)
      await page.fill('#upload input[name="name"]', "a-name-much-longer-than-twenty-five")
      await page.evaluate(() => document.querySelector('#upload input[name="name"]')?.removeAttribute("maxlength"))
      await page.fill('#upload input[name="name"]', "a-name-much-longer-than-twenty-five")
      await page.setInputFiles('#upload input[name="sources"]', tgz(C_CHAMPION, "long"))
      await page.click('#upload button[type="submit"]')
      await page.waitForSelector(".error:has-text('longer than 25 characters')")
      await shot(page, "upload-error")
      expect(await championCount()).toBe(before)

      // the throttle: 4 launches a minute; alice launched 1, three more pass, the fifth is refused
      for (let i = 0; i < 4; i++) {
        await page.goto(`${web.url}/matches/new/`)
        await page.selectOption('#launch select[name="champion_1"]', String(id))
        await page.selectOption('#launch select[name="champion_2"]', String(bobChampion.id))
        await page.click('#launch button[type="submit"]')
        await page.waitForLoadState()
      }
      await page.waitForSelector(".error:has-text('too many matches')")
      await shot(page, "throttled")
      expect(Number((await db.query("SELECT count(*) AS n FROM match WHERE author = 'alice'")).rows[0].n)).toBe(4)
    } finally {
      await context.close()
    }
  }, 90_000)
})

describe("concours rules over HTTP", () => {
  it("a contestant cannot read another's sources or player logs; the API keeps the original's shapes", async () => {
    const bob = await logIn(web.url, BOB.login, BOB.password)
    const alice = await logIn(web.url, ALICE.login, ALICE.password)
    const alicebot = (await db.query("SELECT id FROM champion WHERE name = 'alicebot'")).rows[0].id as number
    expect((await request(`${web.url}/champions/${alicebot}/sources/`, { headers: { cookie: bob } })).status).toBe(403)
    expect((await request(`${web.url}/champions/${alicebot}/sources/`, { headers: { cookie: alice } })).status).toBe(200)
    const detail = await request(`${web.url}/champions/${alicebot}/`, { headers: { cookie: bob } })
    expect(detail.status).toBe(200)
    expect(detail.body).not.toContain("compile-log")
    const player = (await db.query("SELECT p.id, p.match_id FROM match_player p JOIN champion c ON c.id = p.champion_id WHERE c.name = 'alicebot' AND p.log_digest IS NOT NULL")).rows[0]
    expect((await request(`${web.url}/matches/${player.match_id}/log/${player.id}/`, { headers: { cookie: bob } })).status).toBe(403)
    expect((await request(`${web.url}/matches/${player.match_id}/log/${player.id}/`, { headers: { cookie: alice } })).status).toBe(200)

    const list = await fetch(`${web.url}/api/matches/?author=alice`, { headers: { authorization: basic(BOB) } })
    const body = (await list.json()) as { count: number; next: string | null; previous: null; results: Array<Record<string, unknown>> }
    expect(body.count).toBe(4)
    expect(body.previous).toBeNull()
    expect(Object.keys(body.results[0]!)).toEqual(["url", "id", "author", "status", "status_human", "tournament", "players", "created"])
    expect(body.results[0]!["author"]).toMatchObject({ username: "alice" })
    expect((await fetch(`${web.url}/api/matches/`, { headers: { authorization: basic({ login: "bob", password: "wrong" }) } })).status).toBe(401)
    // a session needs X-CSRFToken on writes, as DRF's SessionAuthentication
    // DELETE: the author only (soft delete), then it is gone from the API
    const doomed = (await db.query("INSERT INTO champion (name, author, sources_digest) VALUES ('doomed', 'alice', repeat('a', 64)) RETURNING id")).rows[0].id as number
    expect((await fetch(`${web.url}/api/champions/${doomed}/`, { method: "DELETE", headers: { authorization: basic(BOB) } })).status).toBe(403)
    expect((await fetch(`${web.url}/api/champions/${doomed}/`, { method: "DELETE", headers: { authorization: basic(ALICE) } })).status).toBe(204)
    expect((await fetch(`${web.url}/api/champions/${doomed}/`, { headers: { authorization: basic(ALICE) } })).status).toBe(404)
    expect((await db.query("SELECT deleted FROM champion WHERE id = $1", [doomed])).rows[0].deleted).toBe(true)
    const noCsrf = await request(`${web.url}/api/maps/`, { method: "POST", headers: { cookie: bob, "content-type": "application/json" }, body: '{"name":"x","contents":"y"}' })
    expect(noCsrf.status).toBe(403)
  })

  it("maps: the validator's refusal and its timeout are messages on the page, nothing stored", async () => {
    const cookie = await logIn(web.url, BOB.login, BOB.password)
    const token = csrfOf((await request(`${web.url}/maps/new/`, { headers: { cookie } })).body)
    const post = (name: string, contents: string) =>
      request(`${web.url}/maps/new/`, { method: "POST", headers: { cookie }, body: new URLSearchParams({ _csrf: token, name, contents }).toString() })
    const count = async () => Number((await db.query("SELECT count(*) AS n FROM map")).rows[0].n)
    const before = await count()
    const refused = await post("badmap", "bad cells\n")
    expect(refused.status).toBe(400)
    expect(refused.body).toContain("line 1: unknown cell kind")
    const slow = await post("slowmap", "slow\n")
    expect(slow.status).toBe(400)
    expect(slow.body).toContain("did not answer in time")
    expect(await count()).toBe(before)
    const ok = await post("mine", "turns 3\r\ncells 1 2 3\r\n")
    expect(ok.status).toBe(303)
    const id = Number(/\/maps\/(\d+)\//.exec(String(ok.headers.location))?.[1])
    const api = (await (await fetch(`${web.url}/api/maps/${id}/`, { headers: { authorization: basic(BOB) } })).json()) as Record<string, unknown>
    expect(api).toMatchObject({ id, name: "mine", contents: "turns 3\ncells 1 2 3\n", official: false, author: { username: "bob" } })
  })
})

describe("prolo concours (the CLI over the REST API)", () => {
  const prolo = (args: ReadonlyArray<string>, password = BOB.password) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [path.join(checkout, "bin", "prolo.js"), "concours", "--url", web.url, "--user", BOB.login, ...args],
        { env: { ...process.env, PROLO_PASSWORD: password } },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
      )
      child.stdin?.end()
    })

  it("uploads a champion, launches a match and prints a map; a refusal is one line and status 2", async () => {
    const up = await prolo(["champion", "upload", tgz(C_CHAMPION, "cli"), "--name", "clibot"])
    expect(up.code, up.stderr).toBe(0)
    const champion = JSON.parse(up.stdout) as { id: number; name: string; status: string }
    expect(champion).toMatchObject({ name: "clibot", status: "new" })
    await compiled(champion.id)
    const bobot = (await db.query("SELECT id FROM champion WHERE name = 'bobot'")).rows[0].id as number
    const mapId = (await db.query("SELECT id FROM map WHERE name = 'default'")).rows[0].id as number
    const launched = await prolo(["match", "launch", String(champion.id), String(bobot), "--map", String(mapId)])
    expect(launched.code, launched.stderr).toBe(0)
    const { url } = JSON.parse(launched.stdout) as { url: string }
    const matchId = Number(/\/matches\/(\d+)\/$/.exec(url)?.[1])
    expect((await db.query("SELECT priority, status FROM match WHERE id = $1", [matchId])).rows[0]).toEqual({ priority: 500, status: "new" })
    const map = await prolo(["map", "get", String(mapId)])
    expect(map.stdout).toBe("turns 3\ncells 5 3 8\n")
    const dup = await prolo(["champion", "upload", tgz(C_CHAMPION, "cli2"), "--name", "clibot"])
    expect(dup.code).toBe(2)
    expect(dup.stderr).toMatch(/400 .*already have a champion named/)
    const wrong = await prolo(["map", "get", String(mapId)], "nope")
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toContain("401")
  }, 60_000)
})

describe("tournaments", () => {
  it("staff create one from each contestant's latest ready champion, launch the round robin, evaluate with ex aequo ranks", async () => {
    await run(
      Effect.gen(function* () {
        const { udb } = yield* rpcClients(web.url)
        yield* udb.createUser({ login: "orgat", firstname: "Orga", lastname: "T", group: "orga", password: "orga-pass-1" })
      })
    )
    const staff = await run(
      Effect.tryPromise(() => logIn(web.url, "orgat", "orga-pass-1")).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))))
    )
    const token = csrfOf((await request(`${web.url}/tournaments/`, { headers: { cookie: staff } })).body)
    const post = (p: string, fields: Record<string, string>, cookie = staff) =>
      request(`${web.url}${p}`, { method: "POST", headers: { cookie }, body: new URLSearchParams({ _csrf: token, ...fields }).toString() })
    // a contestant may not create one
    const alice = await logIn(web.url, ALICE.login, ALICE.password)
    expect((await post("/tournaments/new/", { name: "mine" }, alice)).status).toBe(403)
    const created = await post("/tournaments/new/", { name: "Final" })
    expect(created.status).toBe(303)
    const tid = Number(/\/tournaments\/(\d+)\//.exec(String(created.headers.location))?.[1])
    const players = await db.query("SELECT c.name FROM tournament_player p JOIN champion c ON c.id = p.champion_id WHERE p.tournament_id = $1 ORDER BY c.name", [tid])
    expect(players.rows.map((r) => r.name)).toEqual(["alicebot", "clibot"]) // bob's latest ready one
    expect((await post(`/tournaments/${tid}/launch/`, { repeat: "1" })).status).toBe(303)
    const matches = await db.query("SELECT id, priority FROM match WHERE tournament_id = $1 ORDER BY id", [tid])
    expect(matches.rows.map((r) => r.priority)).toEqual([300, 300])
    const early = await post(`/tournaments/${tid}/evaluate/`, { scoring: "wins" })
    expect(early.status).toBe(400)
    expect(early.body).toContain("2 matches of tournament")
    expect((await post(`/tournaments/${tid}/launch/`, { repeat: "1" })).body).toContain("already has its 2 matches")
    for (const m of matches.rows) await finished(m.id)
    expect((await post(`/tournaments/${tid}/evaluate/`, { scoring: "wins" })).status).toBe(303)
    const page = await request(`${web.url}/tournaments/${tid}/`, { headers: { cookie: alice } })
    expect(page.status).toBe(404) // not visible to contestants yet
    const standings = await request(`${web.url}/tournaments/${tid}/`, { headers: { cookie: staff } })
    // each won one match as first player: 2 points each, both ranked 1
    expect([...standings.body.matchAll(/<td class="rank">(\d+)<\/td>/g)].map((m) => m[1])).toEqual(["1", "1"])
    expect((await post(`/tournaments/${tid}/correct/`, { champion: "x", score: "3" })).body).toContain("needs a champion id and an integer score")

    // the REST API: the original's nested shape, visible ones only for contestants, the stats
    const api = async (p: string, cookie: string) => {
      const a = await request(`${web.url}/api${p}`, { headers: { cookie } })
      return { status: a.status, json: JSON.parse(a.body) as Record<string, unknown> & Array<Record<string, unknown>> }
    }
    const listed = await api("/tournaments/", staff)
    expect(listed.status).toBe(200)
    const final = (listed.json["results"] as Array<Record<string, unknown>>).find((t) => t["id"] === tid)!
    expect(Object.keys(final).sort()).toEqual(["created", "id", "maps", "matches", "name", "players", "url"])
    expect((final["players"] as Array<{ name: string }>).map((c) => c.name).sort()).toEqual(["alicebot", "clibot"])
    expect((final["matches"] as Array<{ id: number; tournament: string }>).map((m) => m.id).sort()).toEqual(matches.rows.map((r) => r.id).sort())
    expect((final["matches"] as Array<{ tournament: string }>)[0]!.tournament).toMatch(new RegExp(`/api/tournaments/${tid}/$`))
    expect((await api(`/tournaments/${tid}/`, staff)).json["name"]).toBe("Final")
    expect((await api("/tournaments/", alice)).json["results"]).toEqual([]) // not visible
    expect((await api(`/tournaments/${tid}/`, alice)).status).toBe(404)
    expect((await api("/tournaments/x/", staff)).status).toBe(404)
    expect((await request(`${web.url}/api/tournaments/`)).status).toBe(403)
    const stats = await api(`/tournaments/${tid}/stats/`, staff)
    expect(stats.json.map((c) => [c["name"], c["tournament_score"], c["num_matches"], c["language"]]).sort()).toEqual([
      ["alicebot", 2, 2, { code: "c" }],
      ["clibot", 2, 2, { code: "c" }]
    ])
    for (const c of stats.json) expect(c["avg_match_score"]).toBe((c["sum_match_score"] as number) / 2)
    expect((await api(`/tournaments/${tid}/lang_share/`, staff)).json).toEqual([{ name: "c", y: 2 }])
    const evolution = (await api("/tournaments/evolution/", staff)).json as unknown as { series: Array<{ name: string; data: Array<number | null> }>; categories: Array<string> }
    expect(evolution.categories).toContain("Final")
    const column = evolution.categories.indexOf("Final")
    expect(evolution.series.map((x) => x.data[column]).sort()).toEqual([1, 2]) // the original ranks without ex aequo here
    expect(((await api("/tournaments/evolution/", alice)).json as unknown as { categories: Array<string> }).categories).toEqual([]) // none visible
    // the per-champion matrix (each champion was first once: 15 + 9 against the other) and the printable ranking
    const ids = Object.fromEntries((final["players"] as Array<{ id: number; name: string }>).map((c) => [c.name, c.id]))
    const matrix = await request(`${web.url}/tournaments/${tid}/matrix/`, { headers: { cookie: staff } })
    expect(matrix.status).toBe(200)
    expect(matrix.body).toContain(`data-cell="${ids["alicebot"]}:${ids["clibot"]}">24 (2)</td>`)
    expect(matrix.body).toContain(`data-cell="${ids["clibot"]}:${ids["alicebot"]}">24 (2)</td>`)
    expect((await request(`${web.url}/tournaments/${tid}/matrix/`, { headers: { cookie: alice } })).status).toBe(404)
    expect((await request(`${web.url}/tournaments/${tid}/print/`, { headers: { cookie: alice } })).status).toBe(403)
    const printable = await request(`${web.url}/tournaments/${tid}/print/`, { headers: { cookie: staff } })
    expect(printable.status).toBe(200)
    expect([...printable.body.matchAll(/<td class="rank">(\d+)<\/td><td>(\w+)<\/td>/g)].map((m) => m[2]).sort()).toEqual(["alicebot", "clibot"])
    expect(printable.body).not.toContain('id="whoami"') // no site header on paper
    expect((await request(`${web.url}/tournaments/999999/print/`, { headers: { cookie: staff } })).status).toBe(404)
    // interesting: done matches only, in the match shape
    const interesting = await api("/matches/interesting/", alice)
    expect(interesting.status).toBe(200)
    const done = (await db.query("SELECT id FROM match WHERE status = 'done'")).rows.map((r) => r.id as number)
    expect(interesting.json.length).toBeGreaterThan(0)
    for (const m of interesting.json) expect([done.includes(m["id"] as number), m["status"]]).toEqual([true, "done"])
  })
})

describe("/status/", () => {
  it("shows the master's workers and queue to the logged in, the running tasks to staff only", async () => {
    await run(
      Effect.gen(function* () {
        const { udb } = yield* rpcClients(web.url)
        yield* udb.createUser({ login: "orgas", firstname: "Orga", lastname: "S", group: "orga", password: "orga-pass-1" })
      })
    )
    const staff = await run(
      Effect.tryPromise(() => logIn(web.url, "orgas", "orga-pass-1")).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))))
    )
    const alice = await logIn(web.url, ALICE.login, ALICE.password)
    const anonymous = await request(`${web.url}/status/`)
    expect([anonymous.status, anonymous.headers.location]).toEqual([303, "/login?next=%2Fstatus%2F"])
    const mine = await request(`${web.url}/status/`, { headers: { cookie: alice } })
    expect(mine.status).toBe(200)
    // no worker runs in this file: the master answers with none, and the queue depth
    expect(mine.body).toMatch(/id="cluster-summary">0 worker\(s\), 0\/0 slots busy \(0 %\)\. Queue: \d+ compilation\(s\), \d+ match\(es\)\./)
    expect(mine.body).not.toContain('id="running"')
    const theirs = await request(`${web.url}/status/`, { headers: { cookie: staff } })
    expect(theirs.status).toBe(200)
    expect(theirs.body).toContain('id="running"')
  })
})

describe("match list cache (1 s)", () => {
  it("a launch on this node shows at once; a change made elsewhere within a bounded wait", async () => {
    const headers = { authorization: basic(BOB) }
    const count = async () => ((await (await fetch(`${web.url}/api/matches/`, { headers })).json()) as { count: number }).count
    const before = await count()
    const champions = ((await (await fetch(`${web.url}/api/champions/`, { headers })).json()) as { results: Array<{ id: number; status: string }> }).results
    const ready = champions.filter((c) => c.status === "ready").map((c) => c.id)
    const maps = ((await (await fetch(`${web.url}/api/maps/`, { headers })).json()) as { results: Array<{ id: number }> }).results
    const launched = await fetch(`${web.url}/api/matches/`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ champion_1: ready[0], champion_2: ready[1], map: maps[0]?.id })
    })
    expect([launched.status, launched.status === 201 ? "" : await launched.text()]).toEqual([201, ""])
    expect(await count()).toBe(before + 1) // the launch cleared the cache
    await db.query("INSERT INTO match (author, status, priority) VALUES ('bob', 'new', 500)") // as another node would
    let seen = await count()
    for (let i = 0; i < 60 && seen !== before + 2; i++) {
      await new Promise((r) => setTimeout(r, 50)) // polling the real node, bounded (3 s)
      seen = await count()
    }
    expect(seen).toBe(before + 2)
  })
})
