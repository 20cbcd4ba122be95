import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { TimeAuth } from "../runtime/rpc-auth.js"

// Wire contract of presence (the original presencesync): which login is on which machine.
//
// Two groups because they are signed with different secrets, as the original's endpoints were:
//   - `presence` (presencesync-pub secret): RequestLogin, Heartbeat, Logout — PAM and presenced;
//   - `presence-list` (presencesync-sub secret): List.
// Every change is also published on the `presence` sync topic as `{"login","hostname"}`
// (a delete carries `hostname: null`).

export const PRESENCE_SERVICE = "presence"
export const PRESENCE_LIST_SERVICE = "presence-list"
export const PRESENCE_TOPIC = "presence"

/** Why a login (or a heartbeat that would establish one) is refused; the metric's `reason`. */
export const RefusalReason = Schema.Literal(
  "already_logged",
  "busy",
  "machine_not_registered",
  "user_not_registered",
  "user_not_allowed"
)
export type RefusalReason = typeof RefusalReason.Type

/** `/login` answered 423: `message` is the original's reason text, e.g. "alice is already logged somewhere else". */
export class LoginRefused extends Schema.TaggedError<LoginRefused>()("LoginRefused", {
  login: Schema.String,
  hostname: Schema.String,
  reason: RefusalReason,
  message: Schema.String
}) {}

/** A heartbeat that neither refreshes a lease of this host nor may establish one. */
export class HeartbeatRefused extends Schema.TaggedError<HeartbeatRefused>()("HeartbeatRefused", {
  login: Schema.String,
  hostname: Schema.String,
  reason: RefusalReason,
  message: Schema.String
}) {}

export const LogoutReason = Schema.Literal("not_logged_in", "wrong_host")
export type LogoutReason = typeof LogoutReason.Type

/** The original's logout errors: "Requested logout but not logged in" / "… from the wrong hostname". */
export class LogoutRefused extends Schema.TaggedError<LogoutRefused>()("LogoutRefused", {
  login: Schema.String,
  hostname: Schema.String,
  reason: LogoutReason,
  message: Schema.String
}) {}

/** A login or hostname that cannot name anything (empty, too long, control characters). Nothing changed. */
export class InvalidPresenceRequest extends Schema.TaggedError<InvalidPresenceRequest>()("InvalidPresenceRequest", {
  field: Schema.Literal("login", "hostname"),
  value: Schema.String,
  message: Schema.String
}) {}

/** Presence cannot decide now (database down, machine/user directory not loaded, overloaded). Nothing changed; retry. */
export class PresenceUnavailable extends Schema.TaggedError<PresenceUnavailable>()("PresenceUnavailable", {
  message: Schema.String
}) {}

export const Association = { login: Schema.String, hostname: Schema.String }

/** `login → hostname` of every live lease (the original `/get_list` body). */
export const PresenceList = Schema.Record({ key: Schema.String, value: Schema.String })
export type PresenceList = typeof PresenceList.Type

export class PresenceRpcs extends RpcGroup.make(
  Rpc.make("RequestLogin", {
    payload: Association,
    error: Schema.Union(LoginRefused, InvalidPresenceRequest, PresenceUnavailable)
  }),
  Rpc.make("Heartbeat", {
    payload: Association,
    error: Schema.Union(HeartbeatRefused, InvalidPresenceRequest, PresenceUnavailable)
  }),
  Rpc.make("Logout", {
    payload: Association,
    error: Schema.Union(LogoutRefused, InvalidPresenceRequest, PresenceUnavailable)
  })
).middleware(TimeAuth) {}

export class PresenceListRpcs extends RpcGroup.make(
  Rpc.make("List", { success: PresenceList, error: PresenceUnavailable })
).middleware(TimeAuth) {}
