import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, Schema, type Scope } from "effect"
import type { Whois, WhoisResult } from "./whois.js"

// The whois endpoint nginx's `auth_request` calls, on its own listener: a bare node:http
// handler answering synchronously from the in-memory table (nginx asks on every protected
// request, so no fiber, no allocation beyond the answer). It answers only the peers in the
// allow list (the local nginx): anyone else on the LAN gets 403, not "who sits at this IP".

/** Counted outcomes (`prolo_sso_requests_total{result}`). */
export type RequestResult = WhoisResult | "bad_request" | "refused"

/** nginx passes the client address in this header (the original's `X-Real-Ip`). */
export const CLIENT_IP_HEADER = "x-real-ip"

export class SsoListenError extends Schema.TaggedError<SsoListenError>()("SsoListenError", {
  address: Schema.String,
  message: Schema.String
}) {}

/** `::ffff:127.0.0.1` (an IPv4 peer on a dual-stack socket) is `127.0.0.1`. */
const peerOf = (req: IncomingMessage): string => {
  const address = req.socket.remoteAddress ?? ""
  return address.startsWith("::ffff:") ? address.slice(7) : address
}

const end = (res: ServerResponse, code: number, status: string) => {
  res.writeHead(code, { "X-SSO-Status": status, "Content-Length": "0" })
  res.end()
}

export const whoisHandler = (options: {
  readonly whois: Whois
  /** `Clock` millis, read synchronously (TestClock in tests). */
  readonly now: () => number
  readonly allow: ReadonlyArray<string>
  readonly count: (result: RequestResult) => void
}) => {
  const allow = new Set(options.allow)
  return (req: IncomingMessage, res: ServerResponse): void => {
    const peer = peerOf(req)
    if (!allow.has(peer)) {
      options.count("refused")
      return end(res, 403, `refused: ${peer} is not an allowed client of this service`)
    }
    const path = req.url ?? "/"
    if (path === "/__ping") return end(res, 200, "pong")
    if (path !== "/" && !path.startsWith("/?")) return end(res, 404, `not found: ${path.slice(0, 64)}`)
    if (req.method !== "GET" && req.method !== "HEAD") return end(res, 405, `method ${req.method} not allowed: GET /`)
    const ip = req.headers[CLIENT_IP_HEADER]
    if (typeof ip !== "string" || ip === "") {
      options.count("bad_request")
      return end(res, 400, "missing header: X-Real-IP (is sso/handler included in the vhost?)")
    }
    const answer = options.whois.answer(ip.trim(), options.now())
    options.count(answer.result)
    const headers: Record<string, string> = { "X-SSO-Status": answer.status, "Content-Length": "0" }
    if (answer.user !== undefined) headers["X-SSO-User"] = answer.user
    res.writeHead(200, headers)
    res.end()
  }
}

/** Serves `handler` on `host:port` (port 0 picks one) until the scope closes; returns the bound address. */
export const listenWhois = (
  listen: { readonly host: string; readonly port: number },
  handler: (req: IncomingMessage, res: ServerResponse) => void
): Effect.Effect<{ readonly host: string; readonly port: number }, SsoListenError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<ReturnType<typeof createServer>, SsoListenError>((resume) => {
      const server = createServer({ keepAliveTimeout: 65_000 }, handler)
      const onError = (e: Error) =>
        resume(Effect.fail(new SsoListenError({ address: `${listen.host}:${listen.port}`, message: `sso: cannot listen: ${e.message}` })))
      server.once("error", onError)
      server.listen(listen.port, listen.host, () => {
        server.off("error", onError)
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(
    Effect.map((server) => {
      const address = server.address() as AddressInfo
      return { host: address.address, port: address.port }
    })
  )
