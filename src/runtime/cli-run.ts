import * as NodeContext from "@effect/platform-node/NodeContext"
import type { FileSystem } from "@effect/platform/FileSystem"
import type { Rpc, RpcGroup } from "@effect/rpc"
import { Cause, Console, Effect, Option, type Redacted, type Scope } from "effect"
import { makeRpcClient } from "./cli-client.js"
import { ConfigDir, loadProfile } from "./config.js"
import { SharedSecretProfile } from "./profiles.js"

// What every `prolo <subsystem> …` rpc command shares: the service secret from a profile of the
// config directory, and any failure as one line on stderr with exit status 2.

/** The `shared_secret` of profile `<name>.yml` in `dir`; when not `required`, a missing or bad profile is none (reads work without it). */
const profileSecret = (
  name: string,
  dir: string,
  required: boolean,
  load: SecretLoader = Effect.map(loadProfile(name, SharedSecretProfile), (p) => p.shared_secret)
): Effect.Effect<Option.Option<Redacted.Redacted<string>>, unknown> =>
  load.pipe(
    Effect.map(Option.some),
    required ? (e) => e : Effect.orElseSucceed(() => Option.none()),
    Effect.provide(ConfigDir.layer(dir)),
    Effect.provide(NodeContext.layer)
  )

/** Reads the secret from a profile with keys of its own (hfs-client's `rpc_port`), in the config directory. */
export type SecretLoader = Effect.Effect<Redacted.Redacted<string>, unknown, ConfigDir | FileSystem>

// "Failed to send HTTP request: fetch failed: connect ECONNREFUSED 127.0.0.1:20000": each
// message of the cause chain once, outermost first.
const causeChain = (e: unknown): string => {
  const parts: Array<string> = []
  for (let at: unknown = e, depth = 0; typeof at === "object" && at !== null && depth < 8; depth++) {
    const message = "message" in at && typeof at.message === "string" ? at.message : ""
    if (message !== "" && !parts.includes(message)) parts.push(message)
    at = "cause" in at ? at.cause : undefined
  }
  return parts.join(": ")
}

/** The operator's line for a failure: unreachable node and refused secret say what to check. */
const errorLine = (e: unknown, profile: string, dir: string, node: string): string => {
  if (typeof e === "object" && e !== null) {
    const tag = "_tag" in e && typeof e._tag === "string" ? e._tag : "error"
    if ("message" in e && typeof e.message === "string" && e.message !== "") {
      if (tag === "RpcClientError") return `cannot reach the node at ${node}: ${causeChain(e)} (is it running? --node or PROLO_NODE)`
      if (tag === "Unauthorized") return `${e.message}: is shared_secret in ${dir}/${profile}.yml the node's?`
      return e.message
    }
    return tag
  }
  return String(e)
}

/** Runs a command's `body` (scoped); any failure becomes `prolo <command>: <line>` on stderr and exit status 2. */
const reportingFailure =
  (command: string, profile: string, dir: string, node: string) =>
  <A, E, R>(body: Effect.Effect<A, E, R>): Effect.Effect<void, never, Exclude<R, Scope.Scope>> =>
    body.pipe(
      Effect.scoped,
      Effect.asVoid,
      Effect.catchAllCause((cause) => {
        const reason = Option.getOrElse(Option.orElse(Cause.failureOption(cause), () => Cause.dieOption(cause)), () => Cause.pretty(cause))
        return Console.error(`prolo ${command}: ${errorLine(reason, profile, dir, node)}`).pipe(
          Effect.zipRight(Effect.sync(() => void (process.exitCode = 2)))
        )
      })
    )

const FILTER = /^([A-Za-z_]+)=(.*)$/

/**
 * `FIELD=VALUE` arguments (`mtype=user uid__gte=11000`) as the filters of the original `query`;
 * `value` shapes a value for its key (default: the text as typed).
 */
export const filterArgs = (
  args: ReadonlyArray<string>,
  value: (key: string, text: string) => unknown = (_, text) => text
): Effect.Effect<Record<string, unknown>, { readonly message: string }> => {
  const filters: Record<string, unknown> = {}
  for (const arg of args) {
    const m = FILTER.exec(arg)
    if (m === null) return Effect.fail({ message: `filter ${JSON.stringify(arg)}: expected FIELD=VALUE` })
    const [, key = "", text = ""] = m
    filters[key] = value(key, text)
  }
  return Effect.succeed(filters)
}

type Client<Rpcs extends Rpc.Any> = Effect.Effect.Success<ReturnType<typeof makeRpcClient<Rpcs>>>

/**
 * Runs `body` with a client of `service` on the node `url`, authenticated with the secret of
 * `<profile>.yml` in `dir` (only required when `needsSecret`: reads work without it); any
 * failure becomes one line on stderr and exit status 2.
 */
export const withRpcClient =
  <Rpcs extends Rpc.Any>(options: {
    readonly command: string
    readonly profile: string
    readonly group: RpcGroup.RpcGroup<Rpcs>
    readonly service: string
    /** When the profile has more keys than `url` and `shared_secret`. */
    readonly secret?: SecretLoader
  }) =>
  <A>(
    where: { readonly node: string; readonly config: string },
    needsSecret: boolean,
    body: (client: Client<Rpcs>) => Effect.Effect<A, unknown>
  ): Effect.Effect<void> =>
    Effect.gen(function* () {
      const secret = yield* profileSecret(options.profile, where.config, needsSecret, options.secret)
      const client = yield* makeRpcClient(options.group, {
        url: where.node,
        service: options.service,
        ...(Option.isSome(secret) ? { secret: secret.value } : {})
      })
      return yield* body(client)
    }).pipe(reportingFailure(options.command, options.profile, where.config, where.node))
