import * as HttpServer from "@effect/platform/HttpServer"
import type { Rpc, RpcGroup } from "@effect/rpc"
import { Effect, Redacted } from "effect"
import { makeRpcClient } from "../../src/runtime/cli-client.js"
import { serverUrl } from "../../src/runtime/http-host.js"

// Talking to a test's HTTP host (bound on 127.0.0.1, port 0) as the outside world would.

export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => serverUrl(server.address))

/** `fetch` of `path` on the host: status, content type and body text. */
export const call = (path: string, init?: RequestInit) =>
  Effect.flatMap(baseUrl, (url) =>
    Effect.promise(async () => {
      const res = await fetch(`${url}${path}`, init)
      return { status: res.status, type: res.headers.get("content-type"), body: await res.text() }
    })
  )

/** An rpc client of `service` on the host, with the service secret or anonymous. */
export const rpcClient = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, service: string, secret?: string) =>
  Effect.flatMap(baseUrl, (url) =>
    makeRpcClient(group, { url, service, ...(secret === undefined ? {} : { secret: Redacted.make(secret) }) })
  )
