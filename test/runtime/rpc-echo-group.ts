import { Rpc, RpcGroup } from "@effect/rpc"
import { Effect, Schema, Stream } from "effect"
import { Public, TimeAuth } from "../../src/runtime/rpc-auth.js"

// A small group exercising what the transports must carry: a unary call, a typed error,
// a stream and a public rpc.
export class NoSuchWord extends Schema.TaggedError<NoSuchWord>()("NoSuchWord", { word: Schema.String }) {}

export class EchoRpcs extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Lookup", { payload: { word: Schema.String }, success: Schema.Number, error: NoSuchWord }),
  Rpc.make("Count", { payload: { upTo: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Version", { success: Schema.String }).annotate(Public, true)
).middleware(TimeAuth) {}

export const echoHandlers = EchoRpcs.toLayer({
  Echo: ({ text }) => Effect.succeed(`echo: ${text}`),
  Lookup: ({ word }) => (word === "answer" ? Effect.succeed(42) : Effect.fail(new NoSuchWord({ word }))),
  Count: ({ upTo }) => Stream.range(1, upTo),
  Version: () => Effect.succeed("echo 1")
})
