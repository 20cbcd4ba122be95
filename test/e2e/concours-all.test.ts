import { Effect } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkout, killAll, startNode } from "./node-process.js"
import { skipUnlessRoot } from "../support/root.js"
import { logIn, request, rpcClients } from "../web/node.js"

// Issue 12's first "done when", as an operator does it: `prolo-node --layer all` with the shipped
// configuration (npm start), two contestants' champions uploaded with `prolo concours`, compiled
// by the node's own worker in bubblewrap, a match launched with the CLI and played in the
// sandbox by the reference game; scores, logs, dump and replay readable from the website.

const ALICE = { login: "alice", password: "alice-pass-1" }
const BOB = { login: "bob", password: "bob-pass-1" }
const START_MS = 180_000

let scratch: string
let url: string

const basic = (who: { login: string; password: string }) => `Basic ${Buffer.from(`${who.login}:${who.password}`).toString("base64")}`

const prolo = (who: { login: string; password: string }, args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [path.join(checkout, "bin", "prolo.js"), "concours", "--url", url, "--user", who.login, ...args],
      { env: { ...process.env, PROLO_PASSWORD: who.password } },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    ).stdin?.end()
  })

/** The sample champion of `lang`, packed as contestants do (`_lang` and sources at the top). */
const packed = (lang: "c" | "python"): string => {
  const out = path.join(scratch, `${lang}.tgz`)
  execFileSync("tar", ["-czf", out, "-C", path.join(checkout, "games/reference/champions", lang), "."])
  return out
}

const getJson = async (who: typeof ALICE, p: string) => {
  const r = await fetch(`${url}${p}`, { headers: { authorization: basic(who) } })
  expect(r.status, p).toBe(200)
  return (await r.json()) as Record<string, unknown>
}

/** Polls `p` until its `status` is one of `done` (bounded: 90 s). */
const statusOf = async (who: typeof ALICE, p: string, done: ReadonlyArray<string>): Promise<string> => {
  for (let i = 0; i < 450; i++) {
    const status = String((await getJson(who, p))["status"])
    if (done.includes(status)) return status
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${p} still not in ${done.join("/")} after 90 s`)
}

describe.skipIf(skipUnlessRoot("--layer all runs the cluster worker's bwrap jails as the cluster user"))("concours in --layer all, through the CLI", () => {
  beforeAll(async () => {
    scratch = mkdtempSync(path.join(os.tmpdir(), "prolo-concours-all-"))
    chmodSync(scratch, 0o755) // the embedded PostgreSQL runs as postgres and keeps its data in here
    const config = path.join(scratch, "etc")
    cpSync(path.join(checkout, "etc/prologin"), config, { recursive: true })
    const started = await startNode(["--layer", "all", "--config", config], { PROLO_DATA_DIR: path.join(scratch, "data") }, START_MS)
    url = started.url
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { udb } = yield* rpcClients(url)
          for (const who of [ALICE, BOB]) yield* udb.createUser({ login: who.login, firstname: who.login, lastname: "T", group: "user", password: who.password })
        })
      )
    )
  }, START_MS + 30_000)

  afterAll(async () => {
    await killAll()
    rmSync(scratch, { recursive: true, force: true })
  })

  it("two champions uploaded, compiled in the sandbox, a match played; scores, logs, dump and replay readable", async () => {
    const ids: Array<number> = []
    for (const [who, lang] of [[ALICE, "c"], [BOB, "python"]] as const) {
      // the website follows udb: the new user may take a moment to be known there
      let up = await prolo(who, ["champion", "upload", packed(lang), "--name", `${who.login}bot`])
      for (let i = 0; i < 50 && up.code !== 0 && /401/.test(up.stderr); i++) {
        await new Promise((r) => setTimeout(r, 200))
        up = await prolo(who, ["champion", "upload", packed(lang), "--name", `${who.login}bot`])
      }
      expect(up.code, up.stderr).toBe(0)
      ids.push((JSON.parse(up.stdout) as { id: number }).id)
    }
    for (const [i, id] of ids.entries()) expect(await statusOf(i === 0 ? ALICE : BOB, `/api/champions/${id}/`, ["ready", "error"])).toBe("ready")

    // a map (the reference game's), as a contestant adds one over the REST API
    const map = await fetch(`${url}/api/maps/`, {
      method: "POST",
      headers: { authorization: basic(ALICE), "content-type": "application/json" },
      body: JSON.stringify({ name: "default", contents: readFileSync(path.join(checkout, "games/reference/maps/default.txt"), "utf8") })
    })
    expect(map.status, await map.clone().text()).toBe(201)
    const mapId = ((await map.json()) as { id: number }).id
    expect((await prolo(BOB, ["map", "get", String(mapId)])).stdout).toContain(readFileSync(path.join(checkout, "games/reference/maps/default.txt"), "utf8").trim())

    const launched = await prolo(ALICE, ["match", "launch", String(ids[0]), String(ids[1]), "--map", String(mapId)])
    expect(launched.code, launched.stderr).toBe(0)
    const matchId = Number(/\/matches\/(\d+)\/$/.exec((JSON.parse(launched.stdout) as { url: string }).url)?.[1])
    expect(await statusOf(ALICE, `/api/matches/${matchId}/`, ["done", "failed"])).toBe("done")

    // the website, as alice in her browser: the match page with both players and their scores
    const cookie = await logIn(url, ALICE.login, ALICE.password)
    const page = await request(`${url}/matches/${matchId}/`, { headers: { cookie } })
    expect(page.status).toBe(200)
    expect(page.body).toContain("alicebot")
    expect(page.body).toContain("bobbot")
    expect(page.body).toMatch(/score/i)
    for (const file of ["dump", "replay"]) {
      const r = await fetch(`${url}/matches/${matchId}/${file}/`, { headers: { cookie } })
      expect(r.status, file).toBe(200)
      expect((await r.arrayBuffer()).byteLength, file).toBeGreaterThan(0)
    }
  }, 240_000)
})
