import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { renderToString } from "preact-render-to-string"
import { Effect } from "effect"
import { page } from "../guard.js"
import { htmlResponse, Layout } from "../html.js"
import { webRouter } from "../web-router.js"
import { failurePage, idParam } from "./common.js"
import type { Match } from "./model.js"
import { Concours } from "./service.js"
import { type Standing, Tournaments } from "./tournaments.js"

// The original's other tournament pages: the per-champion matrix (2-player games: the row
// champion's total score against the column champion over their done matches, and how many),
// and the printable ranking (staff; no site header, for the wall or the jury).

export interface Cell {
  readonly score: number
  readonly matches: number
}

/** cells.get(`${a}:${b}`): a's total score against b over the done 2-player matches. */
export const matrixOf = (matches: ReadonlyArray<Match>): ReadonlyMap<string, Cell> => {
  const cells = new Map<string, Cell>()
  for (const m of matches) {
    if (m.status !== "done" || m.players.length !== 2) continue
    const [x, y] = m.players as readonly [Match["players"][number], Match["players"][number]]
    for (const [a, b] of [[x, y], [y, x]] as const) {
      const key = `${a.champion}:${b.champion}`
      const cell = cells.get(key) ?? { score: 0, matches: 0 }
      cells.set(key, { score: cell.score + (a.score ?? 0), matches: cell.matches + 1 })
    }
  }
  return cells
}

const Matrix = (props: { standings: ReadonlyArray<Standing>; cells: ReadonlyMap<string, Cell> }) => (
  <table id="matrix">
    <tr>
      <th />
      {props.standings.map((s) => <th title={s.author}>{s.name}</th>)}
    </tr>
    {props.standings.map((row) => (
      <tr>
        <th title={row.author}>{row.name}</th>
        {props.standings.map((col) => {
          const cell = props.cells.get(`${row.champion}:${col.champion}`)
          return row.champion === col.champion ? (
            <td class="self">—</td>
          ) : (
            <td data-cell={`${row.champion}:${col.champion}`}>{cell === undefined ? "" : `${cell.score} (${cell.matches})`}</td>
          )
        })}
      </tr>
    ))}
  </table>
)

const Printable = (props: { name: string; standings: ReadonlyArray<Standing> }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <title>{`Ranking — ${props.name}`}</title>
      <style>{"body{font-family:sans-serif;margin:2cm}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #999;padding:.3em;text-align:left}.rank{width:4em}"}</style>
    </head>
    <body>
      <h1>{props.name}</h1>
      <table id="ranking">
        <tr><th class="rank">rank</th><th>champion</th><th>author</th><th>score</th></tr>
        {props.standings.map((s) => (
          <tr><td class="rank">{s.rank}</td><td>{s.name}</td><td>{s.author}</td><td class="score">{s.score}</td></tr>
        ))}
      </table>
    </body>
  </html>
)

export const tournamentMatrixRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const tournaments = yield* Tournaments
    const concours = yield* Concours
    const web = yield* webRouter(router)
    yield* web.get("/tournaments/:id/matrix/", (request) =>
      page("user", (viewer) =>
        Effect.gen(function* () {
          const { tournament, standings } = yield* tournaments.standings(idParam(request.url, 2), viewer.staff)
          const matches = yield* concours.matches({ tournament: tournament.id }, 0, 1_000_000)
          return htmlResponse(
            <Layout viewer={viewer} title={`Tournament ${tournament.name}: matrix`}>
              {concours.settings.nb_players === 2 ? (
                <>
                  <p>Row champion's total score against the column champion (done matches). <a href={`/tournaments/${tournament.id}/`}>ranking</a></p>
                  <Matrix standings={standings} cells={matrixOf(matches.results)} />
                </>
              ) : (
                <p>The matrix is for 2-player games; see the <a href={`/matches/?tournament=${tournament.id}`}>matches</a>.</p>
              )}
            </Layout>
          )
        }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
      )
    )
    yield* web.get("/tournaments/:id/print/", (request) =>
      page("staff", (viewer) =>
        tournaments.standings(idParam(request.url, 2), true).pipe(
          Effect.map(({ tournament, standings }) =>
            HttpServerResponse.text(`<!doctype html>${renderToString(<Printable name={tournament.name} standings={standings} />)}`, {
              contentType: "text/html; charset=utf-8"
            })
          ),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      )
    )
  })
)
