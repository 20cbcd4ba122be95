import { Effect, Schedule } from "effect"
import { rmSync } from "node:fs"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll } from "../e2e/node-process.js"
import { ARTIFACTS, csrfOf, logIn, NGINX_ADDRESS, OTHER_ADDRESS, request, rpcClients, startWebNode, type WebNode } from "./support.js"

// The website on a real node (gw + web roles, real PostgreSQL, the topics over websockets),
// driven over HTTP for the authorisation rules and by Debian's chromium for the pages.

const STAFF = { login: "orgaweb", password: "orga-pass-1" }
const ROOT = { login: "rootweb", password: "root-pass-1" }
const ALICE = { login: "alice", password: "alice-pass-1" }

let web: WebNode
let browser: Browser

const run = <A, E>(effect: Effect.Effect<A, E, import("effect").Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

beforeAll(async () => {
  web = await startWebNode()
  await run(
    Effect.gen(function* () {
      const { mdb, udb } = yield* rpcClients(web.url)
      yield* udb.createUser({ login: STAFF.login, firstname: "Orga", lastname: "Web", group: "orga", password: STAFF.password })
      yield* udb.createUser({ login: ROOT.login, firstname: "Root", lastname: "Web", group: "root", password: ROOT.password })
      yield* udb.createUser({ login: ALICE.login, firstname: "Alice", lastname: "Liddell", group: "user", password: ALICE.password })
      yield* mdb.addMachine({ hostname: "pas-r01p01", mac: "aa:bb:cc:00:00:01", mtype: "user", room: "pasteur" })
    })
  )
  // the site learns users from the udb topic: wait until a login works
  await run(
    Effect.tryPromise(() => logIn(web.url, ALICE.login, ALICE.password)).pipe(
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
    )
  )
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await killAll()
  if (web !== undefined) rmSync(web.dir, { recursive: true, force: true })
})

describe("authorisation", () => {
  it("a contestant gets 403 on every admin page and form", async () => {
    const cookie = await logIn(web.url, ALICE.login, ALICE.password)
    for (const p of ["/admin/machines", "/admin/users", "/admin/map", "/admin/map/events", "/admin/passwords", "/admin/users/orgaweb", "/admin/machines/pas-r01p01"]) {
      const answer = await request(`${web.url}${p}`, { headers: { cookie } })
      expect(answer.status, p).toBe(403)
    }
    const home = await request(`${web.url}/`, { headers: { cookie } })
    const posted = await request(`${web.url}/admin/machines`, {
      method: "POST",
      headers: { cookie },
      body: new URLSearchParams({ _csrf: csrfOf(home.body), hostname: "pas-r01p09", mac: "aa:bb:cc:00:00:09" }).toString()
    })
    expect(posted.status).toBe(403)
  })

  it("X-SSO-User is trusted from the configured nginx only", async () => {
    const forged = await request(`${web.url}/admin/machines`, { headers: { "x-sso-user": STAFF.login }, from: OTHER_ADDRESS })
    expect(forged.status).toBe(303)
    expect(forged.headers.location).toMatch(/^\/login/)
    const viaNginx = await request(`${web.url}/admin/machines`, { headers: { "x-sso-user": STAFF.login }, from: NGINX_ADDRESS })
    expect(viaNginx.status).toBe(200)
    expect(viaNginx.body).toContain(`<span id="whoami">${STAFF.login}</span>`)
    // a login UDB does not know is nobody, even from nginx
    const unknown = await request(`${web.url}/`, { headers: { "x-sso-user": "ghost" }, from: NGINX_ADDRESS })
    expect(unknown.status).toBe(303)
  })

  it("a form post without the right CSRF token is refused and changes nothing", async () => {
    const cookie = await logIn(web.url, STAFF.login, STAFF.password)
    const other = await logIn(web.url, ROOT.login, ROOT.password)
    const othersToken = csrfOf((await request(`${web.url}/`, { headers: { cookie: other } })).body)
    for (const token of [undefined, "forged", othersToken]) {
      const answer = await request(`${web.url}/admin/machines`, {
        method: "POST",
        headers: { cookie },
        body: new URLSearchParams({ ...(token === undefined ? {} : { _csrf: token }), hostname: "pas-r01p08", mac: "aa:bb:cc:00:00:08" }).toString()
      })
      expect(answer.status, String(token)).toBe(403)
      expect(answer.body).toContain("CSRF token missing or wrong")
    }
    // and the login form's own token
    const login = await request(`${web.url}/login`, { method: "POST", body: new URLSearchParams({ login: STAFF.login, password: STAFF.password }).toString() })
    expect(login.status).toBe(403)
    const list = await request(`${web.url}/admin/machines?q=pas-r01p08`, { headers: { cookie } })
    expect(list.body).toContain("0 machines")
  })

  it("a wrong password or a tampered cookie logs nobody in", async () => {
    await expect(logIn(web.url, ALICE.login, "nope")).rejects.toThrow(/401/)
    const cookie = await logIn(web.url, ALICE.login, ALICE.password)
    const tampered = cookie.replace("alice.", "orgaweb.")
    const answer = await request(`${web.url}/admin/machines`, { headers: { cookie: tampered } })
    expect(answer.status).toBe(303)
  })

  it("logout ends the session on the server: a copy of the cookie no longer works", async () => {
    const cookie = await logIn(web.url, ALICE.login, ALICE.password)
    const other = await logIn(web.url, ALICE.login, ALICE.password)
    const home = await request(`${web.url}/`, { headers: { cookie } })
    expect(home.body).toContain('id="whoami"')
    // a logout without its CSRF token ends nothing
    expect((await request(`${web.url}/logout`, { method: "POST", headers: { cookie }, body: "_csrf=forged" })).status).toBe(403)
    expect((await request(`${web.url}/champions/mine/`, { headers: { cookie } })).status).toBe(200)
    const out = await request(`${web.url}/logout`, { method: "POST", headers: { cookie }, body: `_csrf=${encodeURIComponent(csrfOf(home.body))}` })
    expect(out.status).toBe(303)
    expect(out.headers["set-cookie"]?.join(";")).toContain("prolo_session=;")
    // the copied cookie (still signed, not expired) is now nobody: pages redirect to the login, the API is 403
    const after = await request(`${web.url}/champions/mine/`, { headers: { cookie } })
    expect(after.status).toBe(303)
    expect(after.headers.location).toBe("/login?next=%2Fchampions%2Fmine%2F")
    expect((await request(`${web.url}/api/champions/?mine`, { headers: { cookie } })).status).toBeGreaterThanOrEqual(401)
    // the same user's other session is untouched
    expect((await request(`${web.url}/champions/mine/`, { headers: { cookie: other } })).status).toBe(200)
  })

  it("an orga may not edit a root; a bad machine is refused with the service's message and nothing stored", async () => {
    const cookie = await logIn(web.url, STAFF.login, STAFF.password)
    expect((await request(`${web.url}/admin/users/${ROOT.login}`, { headers: { cookie } })).status).toBe(403)
    const token = csrfOf((await request(`${web.url}/admin/users`, { headers: { cookie } })).body)
    const edit = await request(`${web.url}/admin/users/${ROOT.login}`, {
      method: "POST",
      headers: { cookie },
      body: new URLSearchParams({ _csrf: token, action: "password", password: "hijacked1" }).toString()
    })
    expect(edit.status).toBe(403)
    const bad = await request(`${web.url}/admin/machines`, {
      method: "POST",
      headers: { cookie },
      body: new URLSearchParams({ _csrf: token, hostname: "pas-r01p07", mac: "not-a-mac", mtype: "user", room: "pasteur" }).toString()
    })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatch(/class="error"[^>]*>[^<]*mac/i)
    expect((await request(`${web.url}/admin/machines?q=pas-r01p07`, { headers: { cookie } })).body).toContain("0 machines")
  })
})

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true })

const formLogin = async (page: Page, who: { login: string; password: string }) => {
  await page.goto(`${web.url}/login`)
  await page.fill('input[name="login"]', who.login)
  await page.fill('input[name="password"]', who.password)
  await shot(page, "login")
  await page.click('#login button[type="submit"]')
  await page.waitForSelector("#whoami")
}

describe("in chromium", () => {
  it("staff adds a machine and it appears on the open live map; a contestant's login turns its cell on within 2 s", async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } })
    try {
      const map = await context.newPage()
      await formLogin(map, STAFF)
      await map.goto(`${web.url}/admin/map`)
      await map.waitForSelector("#map-status:text('live')")
      await map.evaluate(() => ((window as unknown as { marker: number }).marker = 42))
      await shot(map, "map-before")

      const admin = await context.newPage()
      await admin.goto(`${web.url}/admin/machines`)
      await admin.fill('#add-machine input[name="hostname"]', "pas-r01p02")
      await admin.fill('#add-machine input[name="mac"]', "aa:bb:cc:00:00:02")
      await admin.click('#add-machine button[type="submit"]')
      await admin.waitForSelector("#machines a:text('pas-r01p02')")
      await shot(admin, "machines")
      // a refused machine: the service's message on the page
      await admin.goto(`${web.url}/admin/machines`)
      await admin.fill('#add-machine input[name="hostname"]', "pas-r01p03")
      await admin.fill('#add-machine input[name="mac"]', "aa:bb:cc:00:00:02")
      await admin.click('#add-machine button[type="submit"]')
      await admin.waitForSelector(".error:has-text('already used by machine pas-r01p02')")
      await shot(admin, "machines-error")

      await map.waitForSelector("#cell-pas-r01p02", { timeout: 5000 })

      await run(
        Effect.gen(function* () {
          const { presence } = yield* rpcClients(web.url)
          yield* presence.RequestLogin({ login: ALICE.login, hostname: "pas-r01p01" })
        })
      )
      const started = Date.now()
      await map.waitForSelector('#cell-pas-r01p01[data-state="contestant"][data-login="alice"]', { timeout: 2000 })
      const elapsed = Date.now() - started
      console.log(`live map: alice's login shown after ${elapsed} ms`)
      expect(elapsed).toBeLessThan(2000)
      expect(await map.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42)
      await shot(map, "map-after")

      const users = await context.newPage()
      await users.goto(`${web.url}/admin/users`)
      await users.waitForSelector("#users a:text('alice')")
      await shot(users, "users")
      await users.goto(`${web.url}/admin/passwords?group=user`)
      await users.waitForSelector("#passwords :text('alice-pass-1')")
      await shot(users, "passwords")
    } finally {
      await context.close()
    }
  }, 60_000)
})
