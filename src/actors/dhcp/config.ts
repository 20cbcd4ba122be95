import { Schema } from "effect"

// `dhcp.yml`. With no `file`, dhcpd.conf goes to the node's data directory
// (`$PROLO_DATA_DIR/dhcp/dhcpd.conf`, else `./var/dhcp/dhcpd.conf`) and nothing is restarted:
// `npm start` never touches the machine's own dhcpd.

const Argv = Schema.NonEmptyArray(Schema.NonEmptyString)

export const DhcpProfile = Schema.Struct({
  /** The generated dhcpd.conf (production: /etc/dhcp/dhcpd.conf). */
  file: Schema.optional(Schema.NonEmptyString),
  /** The checker: `-t -cf <file>` appended. */
  dhcpd: Schema.optionalWith(Argv, { default: () => ["dhcpd"] as const }),
  /** Restarts dhcpd after its file changed (dhcpd has no reload); absent: nothing restarted. */
  restart: Schema.optional(Argv),
  restart_window_ms: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 100 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type DhcpProfile = typeof DhcpProfile.Type
