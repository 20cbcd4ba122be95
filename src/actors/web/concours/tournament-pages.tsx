import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect } from "effect"
import { WebDirectory, isStaff } from "../directory.js"
import { field, formPost, page, seeOther } from "../guard.js"
import { Csrf, ErrorBox, htmlResponse, Layout } from "../html.js"
import type { Viewer } from "../viewer.js"
import { webRouter } from "../web-router.js"
import { failurePage, idParam, when } from "./common.js"
import { Tournaments, type TournamentRow } from "./tournaments.js"

// Tournaments: the list (contestants see the visible ones), a tournament's ranking with ex
// aequo ranks and its matches; staff create one, launch its round robin, evaluate it and
// correct a score with a comment.

const ListPage = (props: { viewer: Viewer; tournaments: ReadonlyArray<TournamentRow>; error?: string }) => (
  <Layout viewer={props.viewer} title="Tournaments">
    <ErrorBox message={props.error} />
    <table id="tournaments">
      <tr><th>name</th><th>champions</th><th>matches</th><th>created</th></tr>
      {props.tournaments.map((t) => (
        <tr>
          <td><a href={`/tournaments/${t.id}/`}>{t.name}</a>{t.visible ? "" : " (hidden)"}</td>
          <td>{t.players}</td>
          <td>{t.matches}</td>
          <td>{when(t.created)}</td>
        </tr>
      ))}
    </table>
    {props.viewer.staff ? (
      <form method="post" action="/tournaments/new/" id="new-tournament">
        <Csrf viewer={props.viewer} />
        <p>New tournament with the latest ready champion of each contestant and the official maps:{" "}
          <input name="name" placeholder="name" /> <button type="submit">create</button>
        </p>
      </form>
    ) : null}
  </Layout>
)

export const tournamentRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const tournaments = yield* Tournaments
    const directory = yield* WebDirectory
    const web = yield* webRouter(router)
    const list = (viewer: Viewer, status = 200, error?: string) =>
      tournaments.list(viewer.staff).pipe(
        Effect.map((ts) => htmlResponse(<ListPage viewer={viewer} tournaments={ts} {...(error === undefined ? {} : { error })} />, status)),
        Effect.catchAll((e) => failurePage(viewer, e))
      )
    yield* web.get("/tournaments/", () => page("user", (viewer) => list(viewer)))
    yield* web.post("/tournaments/new/", () =>
      formPost("staff", (viewer, form) =>
        tournaments.create(field(form, "name") ?? "", (login) => {
          const group = directory.userGroup(login)
          return group !== undefined && isStaff({ group })
        }).pipe(
          Effect.map((id) => seeOther(`/tournaments/${id}/`)),
          Effect.catchAll((e) => (e._tag === "TournamentRefused" ? list(viewer, 400, e.message) : failurePage(viewer, e)))
        )
      )
    )
    const show = (viewer: Viewer, id: number, status = 200, error?: string) =>
      tournaments.standings(id, viewer.staff).pipe(
        Effect.map(({ tournament, standings }) =>
          htmlResponse(
            <Layout viewer={viewer} title={`Tournament ${tournament.name}`}>
              <ErrorBox message={error} />
              <p>
                {tournament.players} champions, {tournament.matches} matches{tournament.evaluated ? ", evaluated" : ""} ·{" "}
                <a href={`/matches/?tournament=${tournament.id}`}>matches</a> · <a href={`/tournaments/${tournament.id}/matrix/`}>matrix</a>
                {viewer.staff ? <> · <a href={`/tournaments/${tournament.id}/print/`}>printable ranking</a></> : null}
              </p>
              <table id="standings">
                <tr><th>rank</th><th>champion</th><th>author</th><th>score</th>{viewer.staff ? <th>correction</th> : null}</tr>
                {standings.map((s) => (
                  <tr>
                    <td class="rank">{s.rank}</td>
                    <td><a href={`/champions/${s.champion}/`}>{s.name}</a></td>
                    <td>{s.author}</td>
                    <td class="score">{s.score}</td>
                    {viewer.staff ? <td>{s.correction}</td> : null}
                  </tr>
                ))}
              </table>
              {viewer.staff ? (
                <>
                  <form method="post" action={`/tournaments/${tournament.id}/launch/`} id="launch-tournament">
                    <Csrf viewer={viewer} />
                    <p>Round robin, each pairing <input name="repeat" value="1" size={2} /> time(s) per map <button type="submit">launch</button></p>
                  </form>
                  <form method="post" action={`/tournaments/${tournament.id}/evaluate/`} id="evaluate-tournament">
                    <Csrf viewer={viewer} />
                    <p>
                      <select name="scoring"><option value="wins">wins</option><option value="cumulative">cumulative</option></select>{" "}
                      <button type="submit">evaluate</button>
                    </p>
                  </form>
                  <form method="post" action={`/tournaments/${tournament.id}/correct/`} id="correct-tournament">
                    <Csrf viewer={viewer} />
                    <p>Correct: champion <input name="champion" size={4} /> score <input name="score" size={4} /> comment <input name="comment" /> <button type="submit">save</button></p>
                  </form>
                </>
              ) : null}
            </Layout>,
            status
          )
        ),
        Effect.catchAll((e) => failurePage(viewer, e))
      )
    yield* web.get("/tournaments/:id/", (request) => page("user", (viewer) => show(viewer, idParam(request.url, 2))))
    const action = (name: string, run: (id: number, form: ReadonlyArray<readonly [string, string]>) => Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>) =>
      web.post(`/tournaments/:id/${name}/`, (request) =>
        formPost("staff", (viewer, form) => {
          const id = idParam(request.url, 2)
          return run(id, form).pipe(
            Effect.map(() => seeOther(`/tournaments/${id}/`)),
            Effect.catchAll((e) => show(viewer, id, e._tag === "NotFound" ? 404 : 400, e.message))
          )
        })
      )
    const int = (v: string | undefined) => (v !== undefined && /^-?\d{1,9}$/.test(v.trim()) ? Number(v) : NaN)
    yield* action("launch", (id, form) => tournaments.launch(id, int(field(form, "repeat"))))
    yield* action("evaluate", (id, form) => tournaments.evaluate(id, field(form, "scoring") === "cumulative" ? "cumulative" : "wins"))
    yield* action("correct", (id, form) => tournaments.correct(id, int(field(form, "champion")), int(field(form, "score")), field(form, "comment") ?? ""))
  })
)
