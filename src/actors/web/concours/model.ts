import { Schema } from "effect"

// The concours as the website shows it (rows of migration 0007's tables) and the refusals a
// contestant reads on the page or in the API's 400 answer. Nothing is stored on a refusal.

export const CHAMPION_STATUSES = ["new", "pending", "ready", "error", "failed"] as const
export const MATCH_STATUSES = ["creating", "new", "pending", "done", "failed"] as const

/** The original's priorities (higher first). */
export const Priority = { now: 1000, interactive: 700, default: 500, tournament: 300, bestEffort: 0 } as const

export const NAME_MAX = 25

export interface Champion {
  readonly id: number
  readonly name: string
  readonly author: string
  readonly status: (typeof CHAMPION_STATUSES)[number]
  readonly deleted: boolean
  readonly comment: string
  readonly created: string
  readonly sourcesDigest: string
  readonly compiledDigest: string | null
  readonly logDigest: string | null
  readonly failure: string | null
}

export interface MatchPlayerView {
  readonly id: number
  readonly champion: number
  readonly championName: string
  readonly championAuthor: string
  readonly score: number | null
  readonly nbTimeout: number | null
  readonly logDigest: string | null
}

export interface Match {
  readonly id: number
  readonly author: string
  readonly status: (typeof MATCH_STATUSES)[number]
  readonly priority: number
  readonly mapId: number | null
  readonly tournament: number | null
  readonly created: string
  readonly players: ReadonlyArray<MatchPlayerView>
  readonly serverLogDigest: string | null
  readonly dumpDigest: string | null
  readonly replayDigest: string | null
  readonly failure: string | null
}

export interface GameMap {
  readonly id: number
  readonly name: string
  readonly author: string
  readonly contents: string
  readonly official: boolean
  readonly created: string
}

export interface Page<A> {
  readonly count: number
  readonly results: ReadonlyArray<A>
}

export interface MatchFilters {
  readonly author?: string
  readonly champion?: number
  readonly championAuthor?: string
  readonly tournament?: number
}

/** An upload refused (name, archive, size); `field` names the form field at fault. */
export class ChampionRefused extends Schema.TaggedError<ChampionRefused>()("ChampionRefused", {
  field: Schema.String,
  message: Schema.String
}) {}

export class MatchRefused extends Schema.TaggedError<MatchRefused>()("MatchRefused", {
  reason: Schema.Literal("throttled", "players", "champion", "map"),
  message: Schema.String
}) {}

export class MapRefused extends Schema.TaggedError<MapRefused>()("MapRefused", {
  field: Schema.String,
  message: Schema.String
}) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  what: Schema.String,
  message: Schema.String
}) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  message: Schema.String
}) {}

export class ConcoursUnavailable extends Schema.TaggedError<ConcoursUnavailable>()("ConcoursUnavailable", {
  message: Schema.String
}) {}
