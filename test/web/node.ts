import { Effect, Redacted } from "effect"
import * as http from "node:http"
import { MDB_SERVICE, MdbRpcs } from "../../src/protocols/mdb.js"
import { PRESENCE_SERVICE, PresenceRpcs } from "../../src/protocols/presence.js"
import { UDB_SERVICE, UdbRpcs } from "../../src/protocols/udb.js"
import { makeRpcClient } from "../../src/runtime/cli-client.js"
import { DEV_SECRETS } from "../presence/support/spawn-node.js"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { checkout, freePortOn, type Spawned, spawnBin, spawnNode, waitForOutput } from "../e2e/node-process.js"

// `prolo-node --layer gw,web` on this lane's loopback addresses (127.0.15.x) over a given
// database: the website follows the gateway's topics over websockets, as on the real LAN.
// 127.0.15.2 plays the nginx whose X-SSO-User the site trusts; 127.0.15.3 is anybody else.
// No vitest here: bench/web.ts uses these too.

// PROLO_WEB_TEST_HOST_OFFSET moves them up (128: 127.0.15.129-131) when two checkouts test at once.
const HOST_OFFSET = Number(process.env["PROLO_WEB_TEST_HOST_OFFSET"] ?? "0")
const host = (n: number) => `127.0.15.${n + HOST_OFFSET}`
export const NODE_HOST = host(1)
export const NGINX_ADDRESS = host(2)
export const OTHER_ADDRESS = host(3)
/** A worker node of the cluster tests. */
export const WORKER_ADDRESS = host(4)
export const ARTIFACTS = path.join(checkout, "test-artifacts", "web")

export interface WebNode {
  readonly url: string
  readonly database: Redacted.Redacted<string>
  readonly node: Spawned
  readonly dir: string
}

/** `prolo-node --layer gw,web` over `database`, `webExtra` appended to web.yml. */
export const startWebNodeOn = async (database: Redacted.Redacted<string>, webExtra = "", clusterExtra = ""): Promise<WebNode> => {
  const port = await freePortOn(NODE_HOST)
  const url = `http://${NODE_HOST}:${port}`
  const dir = mkdtempSync(path.join(os.tmpdir(), "prolo-web-"))
  const etc = path.join(checkout, "etc", "prologin")
  for (const name of readdirSync(etc)) if (name.endsWith(".yml")) copyFileSync(path.join(etc, name), path.join(dir, name))
  writeFileSync(path.join(dir, "node.yml"), `database:\n  url: ${JSON.stringify(Redacted.value(database))}\n  max_connections: 6\n`)
  writeFileSync(path.join(dir, "web.yml"), `sso_proxies: [${NGINX_ADDRESS}]\nsession_secret: test-web-secret\n${webExtra}`)
  // the website follows the hub over websockets, here the same node
  for (const [profile, secret] of [
    ["mdbsync-sub", "dev-mdbsyncsub-secret"],
    ["udbsync-sub", "dev-udbsyncsub-secret"]
  ] as const) {
    writeFileSync(path.join(dir, `${profile}.yml`), `url: ${url}\nshared_secret: ${secret}\n`)
  }
  // the cluster master of role web: its own port, the website's file store
  writeFileSync(
    path.join(dir, "cluster.yml"),
    `shared_secret: test-cluster-secret\nlisten: ${NODE_HOST}:0\nfiles_dir: var/concours-files\n${clusterExtra}`
  )
  writeFileSync(path.join(dir, "presencesync-sub.yml"), `url: ${url}\nshared_secret: dev-presencesyncsub-secret\n`)
  mkdirSync(ARTIFACTS, { recursive: true })
  const args = ["--layer", "gw,web", "--config", dir, "--listen", `${NODE_HOST}:${port}`]
  // PROLO_WEB_NODE_CPU_PROF=DIR: the node writes a V8 CPU profile there when it stops (bench:web profiling)
  const profile = process.env["PROLO_WEB_NODE_CPU_PROF"]
  const node =
    profile === undefined
      ? spawnBin("prolo-node", args)
      : spawnNode(["--cpu-prof", `--cpu-prof-dir=${profile}`, path.join(checkout, "bin", "prolo-node.js"), ...args])
  await waitForOutput(node, /prolo-node listening on/, 120_000)
  return { url, node, dir, database }
}

export const rpcClients = (url: string) =>
  Effect.all({
    mdb: makeRpcClient(MdbRpcs, { url, service: MDB_SERVICE, secret: Redacted.make(DEV_SECRETS.mdb) }),
    udb: makeRpcClient(UdbRpcs, { url, service: UDB_SERVICE, secret: Redacted.make(DEV_SECRETS.udb) }),
    presence: makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret: Redacted.make(DEV_SECRETS.presence) })
  })

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** One HTTP request from a chosen loopback address (node's fetch cannot choose it). */
export const request = (
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: options.method ?? "GET",
        headers: { ...(options.body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }), ...options.headers },
        localAddress: options.from ?? OTHER_ADDRESS
      },
      (res) => {
        let body = ""
        res.setEncoding("utf8").on("data", (c: string) => (body += c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      }
    )
    req.on("error", reject)
    req.end(options.body)
  })

const cookiesOf = (answer: Answer): Record<string, string> =>
  Object.fromEntries((answer.headers["set-cookie"] ?? []).map((c) => c.split(";")[0]!.split("=")).map(([k, ...v]) => [k!, v.join("=")]))

/** Logs in through the form (with its login-CSRF cookie); returns the session cookie header. */
export const logIn = async (url: string, login: string, password: string): Promise<string> => {
  const form = await request(`${url}/login`)
  const token = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? ""
  const answer = await request(`${url}/login`, {
    method: "POST",
    headers: { cookie: `prolo_login_csrf=${cookiesOf(form)["prolo_login_csrf"]}` },
    body: new URLSearchParams({ _csrf: token, login, password, next: "/" }).toString()
  })
  const session = cookiesOf(answer)["prolo_session"]
  if (answer.status !== 303 || session === undefined) throw new Error(`login ${login} failed: ${answer.status} ${answer.body}`)
  return `prolo_session=${session}`
}

/** The CSRF token of the forms on a page. */
export const csrfOf = (html: string): string => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? ""
