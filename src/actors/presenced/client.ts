import type { Redacted } from "effect"
import { PRESENCE_SERVICE, PresenceRpcs } from "../../protocols/presence.js"
import type { SharedSecretProfile } from "../../runtime/profiles.js"
import { makeRpcClient } from "../../runtime/cli-client.js"
import { makeRpcTcpClient } from "../../runtime/rpc-tcp.js"
import type { PresenceProfile } from "../presence/config.js"

// How a user machine reaches presence (presenced's heartbeats, prolo-pam's login and logout):
// over the gateway's TCP+msgpack port when presence.yml gives `tcp_connect`, else over HTTP at
// presencesync-pub.yml's `url`. Signed with the presencesync-pub secret.

export const DEFAULT_PRESENCE_URL = "http://presencesync/"

export interface PresenceTarget {
  /** TCP+msgpack when given, else HTTP at `url`. */
  readonly tcp?: { readonly host: string; readonly port: number } | undefined
  readonly url: string
  readonly secret: Redacted.Redacted<string>
}

export const presenceTargetOf = (profile: PresenceProfile, pub: SharedSecretProfile): PresenceTarget => ({
  tcp: profile.tcp_connect,
  url: pub.url ?? DEFAULT_PRESENCE_URL,
  secret: pub.shared_secret
})

/** For logs and error lines. */
export const describeTarget = (target: PresenceTarget): string =>
  target.tcp === undefined ? target.url : `tcp ${target.tcp.host}:${target.tcp.port}`

/** A scoped PresenceRpcs client over the target's transport. */
export const makePresenceClient = (target: PresenceTarget) =>
  target.tcp === undefined
    ? makeRpcClient(PresenceRpcs, { url: target.url, service: PRESENCE_SERVICE, secret: target.secret })
    : makeRpcTcpClient(PresenceRpcs, { host: target.tcp.host, port: target.tcp.port, secret: target.secret })
