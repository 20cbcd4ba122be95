import * as path from "node:path"
import { Config, Effect, Option, Schema } from "effect"

// `dns.yml`. With no `dir`, the zones go to the node's data directory (`$PROLO_DATA_DIR/dns`,
// else `./var/dns`): a developer's `--layer all` never touches /etc/named. With no `rndc`,
// nothing is reloaded: production sets it (`[rndc]`) once BIND loads our files.

const Argv = Schema.NonEmptyArray(Schema.NonEmptyString)

export const DnsProfile = Schema.Struct({
  /** Where the zone files and the views file are written (production: /etc/named). */
  dir: Schema.optional(Schema.NonEmptyString),
  named_checkzone: Schema.optionalWith(Argv, { default: () => ["named-checkzone"] as const }),
  named_checkconf: Schema.optionalWith(Argv, { default: () => ["named-checkconf"] as const }),
  /** Command prefix of rndc, `reload <zone> IN <view>` appended; absent: no reload. */
  rndc: Schema.optional(Argv),
  /** Coalescing window of reloads. */
  reload_window_ms: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 100 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type DnsProfile = typeof DnsProfile.Type

/** `dir`, else `<data dir>/<sub>`: `$PROLO_DATA_DIR`, else `./var`, as the embedded database. */
export const dataPath = (dir: string | undefined, sub: string): Effect.Effect<string> =>
  dir !== undefined
    ? Effect.succeed(path.resolve(dir))
    : Config.option(Config.string("PROLO_DATA_DIR")).pipe(
        Effect.orElseSucceed(() => Option.none<string>()),
        Effect.map((root) => path.resolve(Option.getOrElse(root, () => "var"), sub))
      )
