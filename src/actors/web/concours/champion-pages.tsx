import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { formPost, multipartPost, page, seeOther } from "../guard.js"
import { Csrf, ErrorBox, htmlResponse, Layout, Notice } from "../html.js"
import type { Viewer } from "../viewer.js"
import { webRouter } from "../web-router.js"
import { championLanguage } from "./archive.js"
import { failurePage, idParam, Pager, pageOf, when } from "./common.js"
import { type Champion, Forbidden, NotFound } from "./model.js"
import { Concours } from "./service.js"

// Champions: upload (.tgz with `_lang`), mine, all (403 to contestants when
// `fight_only_own_champions`), detail (compilation log and sources for the author and staff
// only), sources download, soft delete by the author.

const PAGE = 50

export const mayRead = (viewer: Viewer, c: Champion) => viewer.staff || viewer.login === c.author

const ChampionTable = (props: { champions: ReadonlyArray<Champion> }) => (
  <table class="champions">
    <tr><th>id</th><th>name</th><th>author</th><th>status</th><th>uploaded</th></tr>
    {props.champions.map((c) => (
      <tr>
        <td>{c.id}</td>
        <td><a href={`/champions/${c.id}/`}>{c.name}</a></td>
        <td>{c.author}</td>
        <td class={`status-${c.status}`}>{c.status}</td>
        <td>{when(c.created)}</td>
      </tr>
    ))}
  </table>
)

const UploadPage = (props: { viewer: Viewer; limit: number; error?: string; name?: string; comment?: string }) => (
  <Layout viewer={props.viewer} title="New champion">
    <ErrorBox message={props.error} />
    <form method="post" action="/champions/new/" enctype="multipart/form-data" id="upload">
      <Csrf viewer={props.viewer} />
      <p><label>name <input name="name" maxLength={25} value={props.name ?? ""} required /></label></p>
      <p><label>sources (.tgz with a <code>_lang</code> file, at most {props.limit} bytes) <input type="file" name="sources" accept=".tgz,.tar.gz" /></label></p>
      <p><label>comment <input name="comment" value={props.comment ?? ""} size={60} /></label></p>
      <button type="submit">upload</button>
    </form>
  </Layout>
)

const DetailPage = (props: { viewer: Viewer; champion: Champion; lang: string; log: string | undefined; notice?: string }) => {
  const c = props.champion
  return (
    <Layout viewer={props.viewer} title={`Champion ${c.name}`}>
      <Notice message={props.notice} />
      <table>
        <tr><th>id</th><td>{c.id}</td></tr>
        <tr><th>author</th><td>{c.author}</td></tr>
        <tr><th>status</th><td id="champion-status" data-status={c.status}>{c.status}</td></tr>
        <tr><th>language</th><td>{props.lang}</td></tr>
        <tr><th>uploaded</th><td>{when(c.created)}</td></tr>
        <tr><th>comment</th><td>{c.comment}</td></tr>
      </table>
      <p>
        <a href={`/matches/?champion=${c.id}`}>its matches</a>
        {mayRead(props.viewer, c) ? <> · <a href={`/champions/${c.id}/sources/`}>download the sources</a></> : null}
      </p>
      {props.log === undefined ? null : (
        <>
          <h2>Compilation log</h2>
          <pre id="compile-log">{props.log}</pre>
        </>
      )}
      {c.failure !== null && mayRead(props.viewer, c) ? <p class="error">{c.failure}</p> : null}
      {c.status === "new" || c.status === "pending" ? <script dangerouslySetInnerHTML={{ __html: "setTimeout(() => location.reload(), 1000)" }} /> : null}
      {props.viewer.login === c.author ? (
        <form method="post" action={`/champions/${c.id}/delete/`} class="noprint" id="delete">
          <Csrf viewer={props.viewer} />
          <button type="submit">delete this champion</button>
        </form>
      ) : null}
    </Layout>
  )
}

export const championRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const concours = yield* Concours
    const web = yield* webRouter(router)
    const limit = concours.settings.max_upload_bytes

    const list = (viewer: Viewer, url: string, title: string, author: string | undefined) => {
      const p = pageOf(url, PAGE)
      return concours.champions({ ...(author === undefined ? {} : { author }), offset: p.offset, limit: p.limit }).pipe(
        Effect.map((found) =>
          htmlResponse(
            <Layout viewer={viewer} title={title}>
              <p><a href="/champions/new/">upload a champion</a></p>
              <ChampionTable champions={found.results} />
              <Pager url={url} page={p.page} size={PAGE} count={found.count} />
            </Layout>
          )
        ),
        Effect.catchAll((e) => failurePage(viewer, e))
      )
    }
    yield* web.get("/champions/mine/", (request) => page("user", (viewer) => list(viewer, request.url, "My champions", viewer.login)))
    yield* web.get("/champions/all/", (request) =>
      page("user", (viewer) =>
        concours.settings.fight_only_own_champions && !viewer.staff
          ? Effect.succeed(htmlResponse(<Layout viewer={viewer} title="Forbidden"><p class="error">only your own champions are listed in this contest</p></Layout>, 403))
          : list(viewer, request.url, "All champions", undefined)
      )
    )
    yield* web.get("/champions/new/", () => page("user", (viewer) => Effect.succeed(htmlResponse(<UploadPage viewer={viewer} limit={limit} />))))
    yield* web.post(
      "/champions/new/",
      () =>
        multipartPost("user", (viewer, form) =>
          Effect.gen(function* () {
            const name = String(form.get("name") ?? "")
            const comment = String(form.get("comment") ?? "")
            const file = form.get("sources")
            const sources = typeof file === "string" || file === null ? new Uint8Array() : new Uint8Array(yield* Effect.promise(() => file.arrayBuffer()))
            return yield* concours.uploadChampion(viewer, { name, comment, sources }).pipe(
              Effect.map((c) => seeOther(`/champions/${c.id}/`)),
              Effect.catchAll((e) =>
                Effect.succeed(htmlResponse(<UploadPage viewer={viewer} limit={limit} error={e.message} name={name} comment={comment} />, e._tag === "ChampionRefused" ? 400 : 503))
              )
            )
          })
        ),
      () => limit + 64 * 1024
    )
    yield* web.get("/champions/:id/", (request) =>
      page("user", (viewer) =>
        Effect.gen(function* () {
          const c = yield* concours.champion(idParam(request.url, 2))
          if (c.deleted && !viewer.staff) return yield* failurePage(viewer, new NotFound({ what: "champion", message: "no such champion" }))
          const sources = yield* Effect.either(concours.file(c.sourcesDigest))
          const lang = sources._tag === "Right" ? championLanguage(sources.right) : undefined
          const log =
            mayRead(viewer, c) && c.logDigest !== null
              ? yield* Effect.map(Effect.either(concours.file(c.logDigest)), (b) => (b._tag === "Right" ? new TextDecoder().decode(b.right) : "(log missing)"))
              : undefined
          return htmlResponse(
            <DetailPage viewer={viewer} champion={c} lang={lang?.ok === true ? lang.lang : "?"} log={log} {...(new URL(request.url, "http://x").searchParams.has("deleted") ? { notice: `Champion ${c.name} deleted.` } : {})} />
          )
        }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
      )
    )
    yield* web.get("/champions/:id/sources/", (request) =>
      page("user", (viewer) =>
        Effect.gen(function* () {
          const c = yield* concours.champion(idParam(request.url, 2))
          if (!mayRead(viewer, c)) return yield* failurePage(viewer, new Forbidden({ message: "only the author and the organisers read a champion's sources" }))
          const bytes = yield* concours.file(c.sourcesDigest)
          return HttpServerResponse.uint8Array(bytes, {
            contentType: "application/gzip",
            headers: { "content-disposition": `attachment; filename="champion-${c.id}.tgz"` }
          })
        }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
      )
    )
    yield* web.post("/champions/:id/delete/", (request) =>
      formPost("user", (viewer) =>
        concours.deleteChampion(viewer, idParam(request.url, 2)).pipe(
          Effect.map((c) => seeOther(`/champions/mine/?deleted=${encodeURIComponent(c.name)}`)),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      )
    )
  })
)
