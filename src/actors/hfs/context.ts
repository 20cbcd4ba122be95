import type { Effect, Redacted } from "effect"
import type { HomeAccess } from "./access.js"
import type { HomeExports } from "./home-exports.js"
import type { ImageSettings } from "./image.js"
import type { LocationsService } from "./locations.js"
import type { HfsMetrics } from "./metrics.js"
import type { Peers } from "./peers.js"

// What the HfsActors of one HFS share: its address, listeners, the location table, the NBD
// gate and exports, and the way to reach the other HFS. Read afresh by every message.

export interface HfsContext {
  readonly hfs: number
  /** Where clients reach this HFS's NBD listener. */
  readonly nbd: { readonly host: string; readonly port: number }
  /** This HFS's transfer listener (the source side of a migration). */
  readonly transfer: { readonly host: string; readonly port: number }
  readonly image: ImageSettings
  readonly locations: LocationsService
  readonly access: HomeAccess
  readonly homes: HomeExports
  readonly metrics: HfsMetrics
  /** The HFS secret (hfs-client.yml): handOver calls and transfer tokens. */
  readonly secret: Redacted.Redacted<string>
  readonly peers: Peers
  /** A grant is live this long after getHome answered it (and while a client is attached). */
  readonly liveGrantMillis: number
  readonly retention: { readonly count: number; readonly seconds: number }
  /** Runs `effect` in the HFS's scope, after the message that started it (notifications). */
  readonly background: (effect: Effect.Effect<void>) => void
  /** Where the destination connects for a transfer (tests put a damaging link in between). */
  readonly transferRoute: (to: { readonly host: string; readonly port: number }) => { readonly host: string; readonly port: number }
}
