import { Context, Schema } from "effect"

// What one HTTP client may make a node hold (issue 17 item 2): every body has a limit fitting
// its route, checked before it is buffered; JSON bodies have a bounded nesting depth; a request
// must have arrived whole within a timeout; a websocket peer that does not read is cut off once
// its unsent bytes pass a bound. Set in node.yml under `http:`; the defaults fit the contest
// network (about 150 machines, requests of a few KiB).

const bytes = (fallback: number) =>
  Schema.optionalWith(
    Schema.Int.pipe(Schema.between(1024, 256 * 1024 * 1024)).annotations({ description: "a number of bytes between 1024 and 268435456" }),
    { default: () => fallback }
  )

const KiB = 1024
const MiB = 1024 * KiB

export const HttpLimitsProfile = Schema.Struct({
  /** Any route that declares no limit of its own (GET routes do not read bodies at all). */
  defaultBodyBytes: bytes(64 * KiB),
  /** The original call surfaces `/call/<method>`, `/udb/call/<method>`: one JSON envelope. */
  callBodyBytes: bytes(64 * KiB),
  /** The original form endpoints `/presencesync/*`: a login and a hostname. */
  formBodyBytes: bytes(16 * KiB),
  /** `POST /rpc/<service>` (ndjson calls; a udb import carries its file) and `/sync/<topic>/update` (one batch). */
  rpcBodyBytes: bytes(4 * MiB),
  /** Bytes of request bodies the node holds at once, all requests together; beyond, 503 and retry. */
  bodyBudgetBytes: bytes(64 * MiB),
  /** Deepest nesting of arrays and objects accepted in a JSON body (our messages nest 4 deep). */
  maxJsonDepth: Schema.optionalWith(
    Schema.Int.pipe(Schema.between(4, 10_000)).annotations({ description: "an integer between 4 and 10000" }),
    { default: () => 64 }
  ),
  /**
   * Seconds a request may take to arrive whole, headers and body (Node's requestTimeout; its
   * headersTimeout is the smaller of this and 60 s). A body trickled byte by byte is cut then.
   */
  requestTimeoutSeconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.between(1, 300)).annotations({ description: "a number of seconds between 1 and 300" }),
    { default: () => 30 }
  ),
  /** Bytes a websocket subscriber may leave unread on the node before it is detached as lagging. */
  websocketUnsentBytes: bytes(4 * MiB),
  /** Largest websocket message a client may send (`/rpc/sync` publishes one batch per message); beyond, the socket is closed (1009). */
  websocketMessageBytes: bytes(4 * MiB)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type HttpLimits = typeof HttpLimitsProfile.Type

export const defaultHttpLimits: HttpLimits = HttpLimitsProfile.make({})

/** The node's limits; routes read them when they are built. Outside a node: the defaults. */
export class HttpLimitsRef extends Context.Reference<HttpLimitsRef>()("prolo/HttpLimits", {
  defaultValue: (): HttpLimits => defaultHttpLimits
}) {}
