import type { Rpc } from "@effect/rpc"
import { Either, type ParseResult, Schema } from "effect"

/**
 * What a TimeAuth token signs for one rpc call:
 *
 *     <rpc tag> "\n" <canonical JSON of the ENCODED payload>
 *
 * Both sides see the *decoded* payload (the client before serialization, the server after
 * decoding), so each re-encodes it with the rpc's payload schema; the encoded form is what
 * crossed the wire, whatever the serialization (JSON, ndjson, msgpack). Canonical JSON:
 * object keys sorted by UTF-16 code units, no whitespace, keys whose value is `undefined`
 * omitted (JSON drops them in transit), `undefined` elsewhere as `null`, non-ASCII escaped as
 * `\uXXXX` (the message stays ASCII like the original's), bigint as bare decimal digits,
 * Date as its ISO string, Uint8Array as a base64 string, non-finite numbers as `null`.
 */
export const canonicalJson = (value: unknown): string => {
  if (value === undefined || value === null) return "null"
  switch (typeof value) {
    case "string":
      return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null"
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return value.toString()
    case "object":
      break
    default:
      return "null"
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value instanceof Date) return canonicalJson(value.toISOString())
  if (value instanceof Uint8Array) return canonicalJson(Buffer.from(value).toString("base64"))
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined && typeof record[k] !== "function" && typeof record[k] !== "symbol")
    .sort()
  return `{${keys.map((k) => `${canonicalJson(k)}:${canonicalJson(record[k])}`).join(",")}}`
}

const encoders = new WeakMap<Rpc.AnyWithProps, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()

const encoderFor = (rpc: Rpc.AnyWithProps) => {
  let encode = encoders.get(rpc)
  if (encode === undefined) {
    // Payload schemas of our protocols need no services; a schema that did would fail here loudly.
    encode = Schema.encodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>)
    encoders.set(rpc, encode)
  }
  return encode
}

/** The text a token signs for `rpc` called with the (decoded) `payload`. */
export const signedMessage = (
  rpc: Rpc.AnyWithProps,
  payload: unknown
): Either.Either<string, ParseResult.ParseError> =>
  Either.map(encoderFor(rpc)(payload), (encoded) => `${rpc._tag}\n${canonicalJson(encoded)}`)
