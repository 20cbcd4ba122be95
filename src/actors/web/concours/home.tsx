import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect } from "effect"
import { page } from "../guard.js"
import { htmlResponse, Layout } from "../html.js"
import { webRouter } from "../web-router.js"
import { failurePage } from "./common.js"
import { MatchTable } from "./match-pages.js"
import { Concours } from "./service.js"

// Home: my champions and my recent matches; organisers also get the admin links.

export const homeRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const concours = yield* Concours
    const web = yield* webRouter(router)
    yield* web.get("/", () =>
      page("user", (viewer) =>
        Effect.all([concours.champions({ author: viewer.login, offset: 0, limit: 10 }), concours.matches({ author: viewer.login }, 0, 10)]).pipe(
          Effect.map(([champions, matches]) =>
            htmlResponse(
              <Layout viewer={viewer} title="Home">
                <p>
                  Logged in as <b>{viewer.login}</b> ({viewer.group}
                  {viewer.via === "sso" ? ", from your machine" : ""}).
                </p>
                {viewer.staff ? (
                  <p>
                    Admin: <a href="/admin/machines">machines</a> · <a href="/admin/users">users</a> · <a href="/admin/map">live room map</a>
                  </p>
                ) : null}
                <h2>My champions</h2>
                <p><a href="/champions/new/">upload a champion</a></p>
                <ul id="my-champions">
                  {champions.results.map((c) => (
                    <li><a href={`/champions/${c.id}/`}>{c.name}</a> — {c.status}</li>
                  ))}
                </ul>
                <h2>My recent matches</h2>
                <p><a href="/matches/new/">launch a match</a></p>
                <MatchTable matches={matches.results} />
              </Layout>
            )
          ),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      )
    )
  })
)
