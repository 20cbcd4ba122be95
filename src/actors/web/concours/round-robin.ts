// The tournament arithmetic of the original management commands, pure:
// `launch_roundrobin` (every ordered N-tuple of distinct champions, × maps, × repeat) and
// `evaluate_roundrobin` (wins: +2 to a sole top scorer, +1 to each tied top scorer;
// cumulative: the sum of the scores), and the ranking with ex aequo.

export interface PlannedMatch {
  readonly champions: ReadonlyArray<number>
  readonly map: number | undefined
}

const tuples = (items: ReadonlyArray<number>, n: number): Array<Array<number>> =>
  n === 0 ? [[]] : items.flatMap((first) => tuples(items.filter((x) => x !== first), n - 1).map((rest) => [first, ...rest]))

export const roundRobin = (
  champions: ReadonlyArray<number>,
  maps: ReadonlyArray<number>,
  players: number,
  repeat: number
): ReadonlyArray<PlannedMatch> => {
  const on: ReadonlyArray<number | undefined> = maps.length === 0 ? [undefined] : maps
  const out: Array<PlannedMatch> = []
  for (let r = 0; r < repeat; r++) for (const map of on) for (const t of tuples(champions, players)) out.push({ champions: t, map })
  return out
}

export type Scoring = "wins" | "cumulative"

export const evaluate = (
  matches: ReadonlyArray<{ readonly players: ReadonlyArray<{ readonly champion: number; readonly score: number | null }> }>,
  champions: ReadonlyArray<number>,
  scoring: Scoring
): Map<number, number> => {
  const total = new Map<number, number>(champions.map((c) => [c, 0]))
  const add = (c: number, n: number) => total.set(c, (total.get(c) ?? 0) + n)
  for (const m of matches) {
    if (scoring === "cumulative") {
      for (const p of m.players) add(p.champion, p.score ?? 0)
      continue
    }
    const best = Math.max(...m.players.map((p) => p.score ?? 0))
    const top = m.players.filter((p) => (p.score ?? 0) === best)
    for (const p of top) add(p.champion, top.length === 1 ? 2 : 1)
  }
  return total
}

/** Rank 1 for the best; equal scores share a rank, and the next rank skips (1, 2, 2, 4). */
export const rank = <A extends { readonly score: number }>(rows: ReadonlyArray<A>): ReadonlyArray<A & { readonly rank: number }> =>
  [...rows]
    .sort((a, b) => b.score - a.score)
    .map((row, _i, sorted) => ({ ...row, rank: 1 + sorted.filter((o) => o.score > row.score).length }))
