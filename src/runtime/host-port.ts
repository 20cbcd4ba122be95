import { Either, ParseResult, Schema } from "effect"
import { parseListen } from "./http-host.js"

/** `HOST:PORT` (`[::1]:20061` for IPv6) in a profile, decoded to an address; the message names the expected form. */
export const HostPort = Schema.transformOrFail(
  Schema.String,
  Schema.Struct({ host: Schema.String, port: Schema.Number }),
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.match(parseListen(input), {
        onLeft: () => ParseResult.fail(new ParseResult.Type(ast, input, "expected HOST:PORT with a port in 0-65535, e.g. 127.0.0.1:20061")),
        onRight: (address) => ParseResult.succeed(address)
      }),
    encode: (address) => ParseResult.succeed(address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`)
  }
).annotations({ description: "HOST:PORT, e.g. 127.0.0.1:20061" })
