import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect } from "effect"
import { field, formPost, page, seeOther } from "../guard.js"
import { Csrf, ErrorBox, htmlResponse, Layout } from "../html.js"
import type { Viewer } from "../viewer.js"
import { webRouter } from "../web-router.js"
import { failurePage, idParam, when } from "./common.js"
import { Concours } from "./service.js"

// Maps: the list (official first), a map's contents, and a new map (checked by the configured
// validator: its stderr is the page's error, its silence past the timeout too).

const NewMapPage = (props: { viewer: Viewer; error?: string; name?: string; contents?: string }) => (
  <Layout viewer={props.viewer} title="New map">
    <ErrorBox message={props.error} />
    <form method="post" action="/maps/new/" id="new-map">
      <Csrf viewer={props.viewer} />
      <p><label>name <input name="name" maxLength={25} value={props.name ?? ""} /></label></p>
      <p><textarea name="contents" rows={12} cols={60}>{props.contents ?? ""}</textarea></p>
      <button type="submit">create</button>
    </form>
  </Layout>
)

export const mapRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const concours = yield* Concours
    const web = yield* webRouter(router)
    yield* web.get("/maps/", () =>
      page("user", (viewer) =>
        concours.maps.pipe(
          Effect.map((maps) =>
            htmlResponse(
              <Layout viewer={viewer} title="Maps">
                <p><a href="/maps/new/">new map</a></p>
                <table id="maps">
                  <tr><th>id</th><th>name</th><th>author</th><th>official</th><th>created</th></tr>
                  {maps.map((m) => (
                    <tr>
                      <td>{m.id}</td>
                      <td><a href={`/maps/${m.id}/`}>{m.name}</a></td>
                      <td>{m.author}</td>
                      <td>{m.official ? "★" : ""}</td>
                      <td>{when(m.created)}</td>
                    </tr>
                  ))}
                </table>
              </Layout>
            )
          ),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      )
    )
    yield* web.get("/maps/new/", () => page("user", (viewer) => Effect.succeed(htmlResponse(<NewMapPage viewer={viewer} />))))
    yield* web.post(
      "/maps/new/",
      () =>
        formPost("user", (viewer, form) => {
          const name = field(form, "name") ?? ""
          const contents = field(form, "contents") ?? ""
          return concours.createMap(viewer, { name, contents }).pipe(
            Effect.map((m) => seeOther(`/maps/${m.id}/`)),
            Effect.catchAll((e) =>
              e._tag === "MapRefused"
                ? Effect.succeed(htmlResponse(<NewMapPage viewer={viewer} error={e.message} name={name} contents={contents} />, 400))
                : failurePage(viewer, e)
            )
          )
        }),
      (l) => l.rpcBodyBytes
    )
    yield* web.get("/maps/:id/", (request) =>
      page("user", (viewer) =>
        concours.map(idParam(request.url, 2)).pipe(
          Effect.map((m) =>
            htmlResponse(
              <Layout viewer={viewer} title={`Map ${m.name}`}>
                <p>by {m.author}{m.official ? ", official" : ""}, {when(m.created)} · <a href={`/api/maps/${m.id}/`}>JSON</a></p>
                <pre id="map-contents">{m.contents}</pre>
              </Layout>
            )
          ),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      )
    )
  })
)
