import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Either, ParseResult, Schema } from "effect"

// The shapes a decoded msgpack frame must have before it is handed to @effect/rpc. The rpc
// server and client trust their input: a request id that is not an integer makes them throw
// `BigInt("x")` synchronously, in our socket's `data` handler, which takes the whole process
// down (issue 17 item 1). Every frame read from the network is checked here first; one that
// does not fit closes its connection only.

/** What `BigInt` accepts and the rpc peers generate: a non-negative decimal counter. */
const RequestId = Schema.String.pipe(Schema.pattern(/^[0-9]{1,20}$/)).annotations({ description: "a decimal request id" })

const Header = Schema.Tuple(Schema.String, Schema.String)

const Request = Schema.Struct({
  _tag: Schema.Literal("Request"),
  id: RequestId,
  tag: Schema.String,
  payload: Schema.Unknown,
  headers: Schema.Array(Header),
  traceId: Schema.optional(Schema.String),
  spanId: Schema.optional(Schema.String),
  sampled: Schema.optional(Schema.Boolean)
})
const ForRequest = Schema.Struct({ _tag: Schema.Literal("Ack", "Interrupt"), requestId: RequestId })
const Bare = Schema.Struct({ _tag: Schema.Literal("Ping", "Eof", "Pong", "ClientProtocolError") })

// By `_tag`, so that a refusal names the one field at fault rather than every union member.
const clientFrames: Record<string, Schema.Schema<unknown, unknown>> = {
  Request: Request as Schema.Schema<unknown, unknown>,
  Ack: ForRequest as Schema.Schema<unknown, unknown>,
  Interrupt: ForRequest as Schema.Schema<unknown, unknown>,
  Ping: Bare as Schema.Schema<unknown, unknown>,
  Eof: Bare as Schema.Schema<unknown, unknown>
}
const serverFrames: Record<string, Schema.Schema<unknown, unknown>> = {
  Chunk: Schema.Struct({ _tag: Schema.Literal("Chunk"), requestId: RequestId, values: Schema.Array(Schema.Unknown) }) as Schema.Schema<unknown, unknown>,
  Exit: Schema.Struct({ _tag: Schema.Literal("Exit"), requestId: RequestId, exit: Schema.Unknown }) as Schema.Schema<unknown, unknown>,
  Defect: Schema.Struct({ _tag: Schema.Literal("Defect"), defect: Schema.Unknown }) as Schema.Schema<unknown, unknown>,
  Pong: Bare as Schema.Schema<unknown, unknown>,
  ClientProtocolError: Bare as Schema.Schema<unknown, unknown>
}

const shown = (v: unknown) => {
  const text = typeof v === "bigint" ? `${v}n` : JSON.stringify(v) ?? String(v)
  return text.length > 40 ? `${text.slice(0, 40)}…` : text
}

const check = (frames: Record<string, Schema.Schema<unknown, unknown>>, frame: unknown): Either.Either<unknown, string> => {
  const tag = typeof frame === "object" && frame !== null && "_tag" in frame ? frame._tag : undefined
  const schema = typeof tag === "string" && Object.hasOwn(frames, tag) ? frames[tag] : undefined
  if (schema === undefined) {
    return Either.left(
      tag === undefined ? `expected a map with a _tag, got ${shown(frame)}` : `unknown message _tag ${shown(tag)}`
    )
  }
  return Either.mapLeft(Schema.decodeUnknownEither(schema)(frame), (e) => {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
    return issue === undefined ? String(e) : `${String(tag)}.${issue.path.join(".")}: ${issue.message}`
  })
}

/**
 * A frame from a client, or why it is refused. `knownTag` tells the rpcs the port serves: a
 * request for another one is refused here too (the rpc server would answer it with a bare
 * Defect that never ends the request, which would hold an in-flight slot forever).
 */
export const checkClientFrame = (frame: unknown, knownTag: (tag: string) => boolean): Either.Either<FromClientEncoded, string> =>
  Either.flatMap(check(clientFrames, frame), (f) => {
    const checked = f as FromClientEncoded
    return checked._tag === "Request" && !knownTag(checked.tag) ? Either.left(`unknown rpc ${shown(checked.tag)}`) : Either.right(checked)
  })

/** A frame from a server, or why the connection to it is dropped. */
export const checkServerFrame = (frame: unknown): Either.Either<FromServerEncoded, string> =>
  Either.map(check(serverFrames, frame), (f) => f as FromServerEncoded)
