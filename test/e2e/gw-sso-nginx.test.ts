import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import { createServer, type IncomingHttpHeaders, request } from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Layer, Schema, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { SsoProfile } from "../../src/actors/sso/config.js"
import { ssoWhois } from "../../src/actors/sso/layer.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { gwTopics, realPresence, settle } from "../support/gw-topics.js"
import { testSupervision } from "../support/supervision.js"
import { killAll, spawnTracked } from "./node-process.js"

// A real nginx (its own prefix and config, never the system service) with the shipped
// etc/nginx/sso snippets in front of a small upstream that records the headers it gets, the
// SSO whois answering from the real Presence service's topic. Clients are curl-like requests
// from 127.0.16.x source addresses, each a "machine" in MDB.

afterEach(killAll)

const NGINX_IP = "127.0.16.1"
const ALICE_MACHINE = "127.0.16.5"
const EMPTY_MACHINE = "127.0.16.6"

interface Reply {
  readonly code: number
  readonly headers: IncomingHttpHeaders
}

const get = (port: number, from: string, headers: Record<string, string> = {}) =>
  new Promise<Reply>((resolve, reject) => {
    const req = request({ host: NGINX_IP, port, path: "/site", headers, localAddress: from, agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve({ code: res.statusCode ?? 0, headers: res.headers }))
    })
    req.on("error", reject)
    req.end()
  })

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, NGINX_IP, () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })

const nginxConf = (prefix: string, listen: number, upstream: number) => `
master_process off;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  include ${prefix}/upstream.conf;
  server {
    listen ${NGINX_IP}:${listen};
    include ${path.resolve("etc/nginx/sso/handler")};
    location /site {
      include ${path.resolve("etc/nginx/sso/protect")};
      proxy_pass http://127.0.16.1:${upstream};
    }
  }
}
`

describe("e2e: SSO behind a real nginx", () => {
  it("the machine's user reaches the site as X-SSO-User; forged headers never pass; SSO down degrades to anonymous", async () => {
    const prefix = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-pf-nginx-"))
    const seen: Array<IncomingHttpHeaders> = []
    const site = createServer((req, res) => {
      seen.push(req.headers)
      res.end("site")
    })
    await new Promise<void>((r) => site.listen(0, NGINX_IP, () => r()))
    try {
      await fs.mkdir(path.join(prefix, "tmp"))
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const t = yield* gwTopics
            const presence = yield* realPresence(t)
            const profile = Schema.decodeUnknownSync(SsoProfile)({ listen: `${NGINX_IP}:0`, allow: ["127.0.0.1", NGINX_IP] })
            const group = yield* Layer.build(supervisorGroup("sso").pipe(Layer.provideMerge(testSupervision)))
            const ssoScope = yield* Scope.make()
            const { address } = yield* ssoWhois(profile).pipe(
              Scope.extend(ssoScope),
              Effect.provide(group),
              Effect.provide(t.clientLayer),
              Effect.provide(t.metrics)
            )
            yield* Effect.addFinalizer(() => Scope.close(ssoScope, Exit.void))
            yield* t.publish("mdb", [t.machine("pas-r01p01", ALICE_MACHINE), t.machine("pas-r01p02", EMPTY_MACHINE)])
            yield* t.publish("udb", [t.user("alice")])
            yield* settle
            yield* presence.requestLogin("alice", "pas-r01p01")
            yield* settle

            const listen = yield* Effect.promise(freePort)
            const shipped = yield* Effect.promise(() => fs.readFile(path.resolve("etc/nginx/sso/upstream.conf"), "utf8"))
            yield* Effect.promise(() =>
              fs.writeFile(
                path.join(prefix, "upstream.conf"),
                shipped.replace("127.0.0.1:20131", `${address.host}:${address.port}`).replace("/var/cache/nginx/sso", path.join(prefix, "cache"))
              )
            )
            const conf = path.join(prefix, "nginx.conf")
            yield* Effect.promise(() => fs.writeFile(conf, nginxConf(prefix, listen, (site.address() as AddressInfo).port)))
            const nginx = spawnTracked(spawn("nginx", ["-p", prefix, "-c", conf], { stdio: ["ignore", "pipe", "pipe"] }))
            const ask = (from: string, headers: Record<string, string> = {}) => Effect.promise(() => get(listen, from, headers))
            yield* Effect.promise(async () => {
              for (let i = 0; i < 400; i++) {
                if (await get(listen, ALICE_MACHINE).then(() => true, () => false)) return
                await new Promise((r) => setTimeout(r, 25))
              }
              throw new Error(`nginx did not start: ${nginx.stderr}${await fs.readFile(path.join(prefix, "error.log"), "utf8").catch(() => "")}`)
            })
            seen.length = 0

            const known = yield* ask(ALICE_MACHINE)
            expect(known.code).toBe(200)
            expect(seen.at(-1)?.["x-sso-user"]).toBe("alice")
            expect(seen.at(-1)?.["x-sso-status"]).toBe(`working: machine ${ALICE_MACHINE} has login alice`)
            expect(known.headers["x-sso-user"]).toBe("alice")
            expect(known.headers["x-sso-backend-status"]).toBe("working")

            // forged identity headers from the client: replaced on the known machine...
            yield* ask(ALICE_MACHINE, { "X-SSO-User": "root", "X-SSO-Status": "working", "X-Real-IP": EMPTY_MACHINE })
            expect(seen.at(-1)?.["x-sso-user"]).toBe("alice")
            // ...and dropped on a machine nobody is logged on, whatever address the client claims
            const forged = yield* ask(EMPTY_MACHINE, { "X-SSO-User": "alice", "X-Real-IP": ALICE_MACHINE, "X-Forwarded-For": ALICE_MACHINE })
            expect(forged.code).toBe(200)
            expect(seen.at(-1)?.["x-sso-user"]).toBeUndefined()
            expect(seen.at(-1)?.["x-sso-status"]).toBe(`unknown: machine ${EMPTY_MACHINE} has no login`)
            expect(forged.headers["x-sso-user"]).toBeUndefined()

            // the whois itself answers nginx only, not a machine asking it directly
            const direct = yield* Effect.promise(
              () =>
                new Promise<number>((resolve, reject) => {
                  const req = request({ host: address.host, port: address.port, path: "/", headers: { "X-Real-IP": ALICE_MACHINE }, localAddress: ALICE_MACHINE, agent: false }, (res) => {
                    res.resume()
                    resolve(res.statusCode ?? 0)
                  })
                  req.on("error", reject)
                  req.end()
                })
            )
            expect(direct).toBe(403)

            yield* presence.logout("alice", "pas-r01p01")
            yield* settle
            yield* ask(ALICE_MACHINE)
            expect(seen.at(-1)?.["x-sso-user"]).toBeUndefined()

            // SSO down: the site is still served, anonymously, and says why
            yield* Scope.close(ssoScope, Exit.void)
            const down = yield* ask(ALICE_MACHINE, { "X-SSO-User": "alice" })
            expect(down.code).toBe(200)
            expect(seen.at(-1)?.["x-sso-user"]).toBeUndefined()
            expect(down.headers["x-sso-backend-status"]).toBe("unavailable (error 502)")
          })
        )
      )
    } finally {
      site.close()
      await killAll()
      await fs.rm(prefix, { recursive: true, force: true })
    }
  }, 120_000)
})
