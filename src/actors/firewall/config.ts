import { Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import { Group } from "../../protocols/udb.js"

// `firewall.yml` (the original's `presencesync_firewall.yml` plus what firewall.service did).
// With no `ipset` command nothing is applied: the set is computed, logged and counted, and the
// machine's own firewall is left alone (the dev loop, `npm start`).

const Argv = Schema.NonEmptyArray(Schema.NonEmptyString)

export const FirewallProfile = Schema.Struct({
  /** Groups whose logged-in users' machines may reach the internet (the original's `allowed_groups`). */
  allowed_groups: Schema.optionalWith(Schema.Array(Group), { default: () => ["root", "orga", "user"] as const }),
  /** During the contest, contestants (group `user`) lose internet whatever `allowed_groups` says. */
  contest_enabled: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** The ipset command (`[ipset]`); absent: compute only, apply nothing. */
  ipset: Schema.optional(Argv),
  /** The set the forwarding rules match, and the one rebuilt then swapped with it. */
  set: Schema.optionalWith(Schema.NonEmptyString, { default: () => "allowed-internet-access" }),
  tmp_set: Schema.optionalWith(Schema.NonEmptyString, { default: () => "tmp-allowed-internet-access" }),
  /** Type and options of both sets when they do not exist yet (`ipset create NAME <these>`). */
  set_type: Schema.optionalWith(Argv, { default: () => ["hash:ip", "family", "inet"] as const }),
  /** Run once after the sets exist, e.g. `[iptables-restore, /etc/prologin/firewall.rules]`; absent: rules are the operator's. */
  rules: Schema.optional(Argv),
  /** A burst of changes is applied once, this long after its first change. */
  debounce_ms: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 60_000)), { default: () => 200 }),
  /** After a failed swap, wait this long before trying again. */
  retry_ms: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 600_000)), { default: () => 2000 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type FirewallProfile = typeof FirewallProfile.Type

export const loadFirewallProfile = loadProfile("firewall", FirewallProfile)

/** The groups allowed now: contest mode removes the contestants. */
export const effectiveGroups = (profile: Pick<FirewallProfile, "allowed_groups" | "contest_enabled">): ReadonlySet<string> =>
  new Set(profile.allowed_groups.filter((g) => !(profile.contest_enabled && g === "user")))
