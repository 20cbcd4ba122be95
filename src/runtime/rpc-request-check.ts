import type { Rpc, RpcGroup } from "@effect/rpc"
import { Either, ParseResult, Schema } from "effect"

// What `/rpc/<service>` accepts, checked before the rpc server sees the body. The server
// itself answers a body that is not ndjson with a 200 and nothing in it (a last line without
// its newline is never parsed), and a payload that fails its schema with a protocol Defect,
// which a client reports as a server bug. Both are the caller's mistake: 400 with this error.
// A client built from the group never sends either (it encodes with the same schemas).

export class InvalidRpcRequest extends Schema.TaggedError<InvalidRpcRequest>()("InvalidRpcRequest", {
  service: Schema.String,
  /** 1-based line of the ndjson body; 0 when the problem is the body as a whole. */
  line: Schema.Int,
  /** The rpc the line names, when it names a known one. */
  rpc: Schema.optional(Schema.String),
  message: Schema.String
}) {}

const MESSAGE_TAGS = ["Request", "Ack", "Interrupt", "Eof", "Ping"]

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const short = (text: string) => (text.length > 80 ? `${text.slice(0, 77)}...` : text)

/** Checks an ndjson rpc body against `group`: every line a message, every request a known rpc with a valid payload. */
export const checkRpcBody = <Rpcs extends Rpc.Any>(
  service: string,
  group: RpcGroup.RpcGroup<Rpcs>,
  body: string
): Either.Either<void, InvalidRpcRequest> => {
  const bad = (line: number, message: string, rpc?: string) =>
    Either.left(new InvalidRpcRequest({ service, line, message, ...(rpc === undefined ? {} : { rpc }) }))
  if (body.trim() === "") return bad(0, "empty body: expected ndjson rpc messages, one JSON object per line")
  if (!body.endsWith("\n")) return bad(0, "the last line has no newline: ndjson messages end with \\n")
  const lines = body.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!
    if (text.trim() === "") continue
    const line = i + 1
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (e) {
      return bad(line, `not JSON (${e instanceof Error ? e.message : String(e)}): ${short(text)}`)
    }
    if (!isObject(value) || typeof value["_tag"] !== "string" || !MESSAGE_TAGS.includes(value["_tag"])) {
      return bad(line, `not an rpc message: expected {"_tag": ${MESSAGE_TAGS.map((t) => `"${t}"`).join(" | ")}, ...}`)
    }
    if (value["_tag"] !== "Request") continue
    const tag = value["tag"]
    // Every rpc made with Rpc.make carries its schemas (the group's type only promises Rpc.Any).
    const rpc = typeof tag === "string" ? (group.requests.get(tag) as Rpc.AnyWithProps | undefined) : undefined
    if (rpc === undefined) {
      return bad(line, `unknown rpc ${short(JSON.stringify(tag) ?? "(none)")} (known: ${[...group.requests.keys()].join(", ")})`)
    }
    if (typeof value["id"] !== "string") return bad(line, "the request id must be a string", rpc._tag)
    // Payload schemas of our groups need no services: decoding is pure.
    const payload = Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>)(value["payload"])
    if (Either.isLeft(payload)) {
      return bad(line, `invalid payload for ${rpc._tag}: ${ParseResult.TreeFormatter.formatErrorSync(payload.left)}`, rpc._tag)
    }
  }
  return Either.void
}
