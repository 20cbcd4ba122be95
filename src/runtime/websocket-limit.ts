import type { IncomingMessage, Server } from "node:http"
import { WebSocketServer } from "ws"

// @effect/platform-node makes the websocket server of each HTTP server itself
// (`new WebSocketServer({ noServer: true })`) and offers no option for its `maxPayload`, so `ws`
// keeps its default of 100 MiB: any client could make a node buffer a 100 MiB message on
// `/rpc/sync` or `/sync/<topic>/follow` before it has said who it is. ws reads
// `options.maxPayload` when it completes each upgrade, so the node sets it there, per HTTP
// server, from node.yml's `http.websocketMessageBytes`. The platform's `ws` is this package's
// `ws` (one copy in node_modules; a test fails if that changes).

const limits = new WeakMap<Server, number>()
let installed = false

const install = () => {
  if (installed) return
  installed = true
  const handleUpgrade = WebSocketServer.prototype.handleUpgrade
  WebSocketServer.prototype.handleUpgrade = function (this: WebSocketServer, request: IncomingMessage, ...rest) {
    const server = (request.socket as { server?: Server }).server
    const limit = server === undefined ? undefined : limits.get(server)
    if (limit !== undefined) this.options.maxPayload = limit
    return handleUpgrade.call(this, request, ...rest)
  } as typeof handleUpgrade
}

/** Bounds every websocket message a client may send to `server` to `bytes` (close 1009 beyond). */
export const limitWebsocketMessages = (server: Server, bytes: number): void => {
  install()
  limits.set(server, bytes)
}
