import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { field, formPost, page, seeOther } from "../guard.js"
import { Csrf, ErrorBox, htmlResponse, Layout } from "../html.js"
import type { Viewer } from "../viewer.js"
import { webRouter } from "../web-router.js"
import { failurePage, idParam, Pager, pageOf, when } from "./common.js"
import { type Champion, Forbidden, type GameMap, type Match, type MatchFilters, NotFound, Priority } from "./model.js"
import { readReplay, ReplayViewer } from "./replay.js"
import { Concours } from "./service.js"

// Matches: launch (ready champions and a map, throttled per user, priority 700 as the
// original's web form), the list with its filters (`?author=`, `?champion=`,
// `?champion-author=`), the detail with scores, logs (a player's log for its champion's
// author and staff, the server's for staff), the dump and replay downloads and the replay viewer.

const PAGE = 100

export const filtersOf = (url: string): MatchFilters => {
  const p = new URL(url, "http://x").searchParams
  const champion = Number(p.get("champion"))
  const tournament = Number(p.get("tournament"))
  return {
    ...(p.get("author") ? { author: p.get("author")! } : {}),
    ...(p.get("champion") && Number.isSafeInteger(champion) ? { champion } : {}),
    ...(p.get("champion-author") ? { championAuthor: p.get("champion-author")! } : {}),
    ...(p.get("tournament") && Number.isSafeInteger(tournament) ? { tournament } : {})
  }
}

export const MatchTable = (props: { matches: ReadonlyArray<Match> }) => (
  <table class="matches">
    <tr><th>id</th><th>status</th><th>players</th><th>launched by</th><th>created</th></tr>
    {props.matches.map((m) => (
      <tr>
        <td><a href={`/matches/${m.id}/`}>{m.id}</a></td>
        <td class={`status-${m.status}`}>{m.status}</td>
        <td>
          {m.players.map((p, i) => (
            <>
              {i > 0 ? " vs " : ""}
              <a href={`/champions/${p.champion}/`}>{p.championName}</a> ({p.championAuthor}){m.status === "done" ? ` ${p.score ?? ""}` : ""}
            </>
          ))}
        </td>
        <td>{m.author}</td>
        <td>{when(m.created)}</td>
      </tr>
    ))}
  </table>
)

const LaunchPage = (props: { viewer: Viewer; champions: ReadonlyArray<Champion>; maps: ReadonlyArray<GameMap>; players: number; useMaps: boolean; error?: string; chosen?: ReadonlyArray<string> }) => (
  <Layout viewer={props.viewer} title="New match">
    <ErrorBox message={props.error} />
    <form method="post" action="/matches/new/" id="launch">
      <Csrf viewer={props.viewer} />
      {Array.from({ length: props.players }, (_, i) => (
        <p>
          <label>
            champion {i + 1}{" "}
            <select name={`champion_${i + 1}`}>
              {props.champions.map((c) => (
                <option value={String(c.id)} selected={props.chosen?.[i] === String(c.id)}>
                  {c.name} ({c.author}, #{c.id})
                </option>
              ))}
            </select>
          </label>
        </p>
      ))}
      {props.useMaps ? (
        <p>
          <label>
            map{" "}
            <select name="map">
              {props.maps.map((m) => (
                <option value={String(m.id)}>{m.official ? "★ " : ""}{m.name} (#{m.id})</option>
              ))}
            </select>
          </label>
        </p>
      ) : null}
      <button type="submit">launch</button>
    </form>
  </Layout>
)

const mayReadPlayer = (viewer: Viewer, author: string) => viewer.staff || viewer.login === author

export const matchRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const concours = yield* Concours
    const web = yield* webRouter(router)
    const settings = concours.settings

    const launchable = (viewer: Viewer) =>
      Effect.all([
        concours.champions({
          status: "ready",
          ...(settings.fight_only_own_champions && !viewer.staff ? { author: viewer.login } : {}),
          offset: 0,
          limit: 1000
        }),
        concours.maps
      ])
    const launchPage = (viewer: Viewer, status: number, extra: { error?: string; chosen?: ReadonlyArray<string> } = {}) =>
      launchable(viewer).pipe(
        Effect.map(([champions, maps]) =>
          htmlResponse(<LaunchPage viewer={viewer} champions={champions.results} maps={maps} players={settings.nb_players} useMaps={settings.use_maps} {...extra} />, status)
        ),
        Effect.catchAll((e) => failurePage(viewer, e))
      )

    yield* web.get("/matches/new/", () => page("user", (viewer) => launchPage(viewer, 200)))
    yield* web.post("/matches/new/", () =>
      formPost("user", (viewer, form) => {
        const chosen = Array.from({ length: settings.nb_players }, (_, i) => field(form, `champion_${i + 1}`) ?? "")
        const mapField = field(form, "map")
        return concours
          .launchMatch(viewer, {
            champions: chosen.map((c) => (/^\d{1,9}$/.test(c) ? Number(c) : -1)),
            map: mapField === undefined || mapField === "" ? undefined : /^\d{1,9}$/.test(mapField) ? Number(mapField) : -1,
            priority: Priority.interactive,
            throttle: true
          })
          .pipe(
            Effect.map((m) => seeOther(`/matches/${m.id}/`)),
            Effect.catchAll((e) =>
              e._tag === "MatchRefused" ? launchPage(viewer, e.reason === "throttled" ? 429 : 400, { error: e.message, chosen }) : failurePage(viewer, e)
            )
          )
      })
    )
    yield* web.get("/matches/mine/", () => page("user", (viewer) => Effect.succeed(seeOther(`/matches/?author=${encodeURIComponent(viewer.login)}`))))
    yield* web.get("/matches/", (request) =>
      page("user", (viewer) => {
        const p = pageOf(request.url, PAGE)
        return concours.matches(filtersOf(request.url), p.offset, p.limit).pipe(
          Effect.map((found) =>
            htmlResponse(
              <Layout viewer={viewer} title="Matches">
                <p><a href="/matches/new/">launch a match</a> · <a href="/matches/mine/">mine</a></p>
                <MatchTable matches={found.results} />
                <Pager url={request.url} page={p.page} size={PAGE} count={found.count} />
              </Layout>
            )
          ),
          Effect.catchAll((e) => failurePage(viewer, e))
        )
      })
    )
    const text = (digest: string | null) =>
      digest === null ? Effect.succeed(undefined) : Effect.map(Effect.either(concours.file(digest)), (b) => (b._tag === "Right" ? new TextDecoder().decode(b.right) : undefined))

    yield* web.get("/matches/:id/", (request) =>
      page("user", (viewer) =>
        Effect.gen(function* () {
          const m = yield* concours.match(idParam(request.url, 2))
          const serverLog = viewer.staff ? yield* text(m.serverLogDigest) : undefined
          const dump = m.dumpDigest === null ? undefined : yield* Effect.either(concours.file(m.dumpDigest))
          const replayFile = m.replayDigest === null ? undefined : yield* Effect.either(concours.file(m.replayDigest))
          const replay =
            dump?._tag === "Right" ? readReplay(dump.right, replayFile?._tag === "Right" ? replayFile.right : undefined) : undefined
          return htmlResponse(
            <Layout viewer={viewer} title={`Match ${m.id}`}>
              <p>
                status <b id="match-status" data-status={m.status}>{m.status}</b>, launched by {m.author} on {when(m.created)}
                {m.mapId === null ? "" : <>, map <a href={`/maps/${m.mapId}/`}>#{m.mapId}</a></>}
              </p>
              {m.failure !== null ? <p class="error">{m.failure}</p> : null}
              <table id="players">
                <tr><th>champion</th><th>author</th><th>score</th><th>timeout</th><th>log</th></tr>
                {m.players.map((p) => (
                  <tr>
                    <td><a href={`/champions/${p.champion}/`}>{p.championName}</a></td>
                    <td>{p.championAuthor}</td>
                    <td class="score">{p.score ?? ""}</td>
                    <td>{p.nbTimeout === null ? "" : p.nbTimeout > 0 ? "yes" : "no"}</td>
                    <td>{mayReadPlayer(viewer, p.championAuthor) && p.logDigest !== null ? <a href={`/matches/${m.id}/log/${p.id}/`}>log</a> : ""}</td>
                  </tr>
                ))}
              </table>
              <p>
                {m.dumpDigest === null ? null : <a href={`/matches/${m.id}/dump/`}>dump</a>}{" "}
                {m.replayDigest === null ? null : <a href={`/matches/${m.id}/replay/`}>replay</a>}
              </p>
              {replay === undefined ? null : <ReplayViewer replay={replay} players={m.players.map((p) => p.championName)} />}
              {serverLog === undefined ? null : (<><h2>Server log</h2><pre>{serverLog}</pre></>)}
              {m.status === "new" || m.status === "pending" ? <script dangerouslySetInnerHTML={{ __html: "setTimeout(() => location.reload(), 1000)" }} /> : null}
            </Layout>
          )
        }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
      )
    )
    yield* web.get("/matches/:id/log/:player/", (request) =>
      page("user", (viewer) =>
        Effect.gen(function* () {
          const m = yield* concours.match(idParam(request.url, 2))
          const player = m.players.find((p) => p.id === idParam(request.url, 4))
          if (player === undefined || player.logDigest === null) return yield* new NotFound({ what: "log", message: "no such log" })
          if (!mayReadPlayer(viewer, player.championAuthor)) return yield* new Forbidden({ message: "only the champion's author and the organisers read its log" })
          const bytes = yield* concours.file(player.logDigest)
          return HttpServerResponse.uint8Array(bytes, { contentType: "text/plain; charset=utf-8" })
        }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
      )
    )
    const download = (kind: "dump" | "replay") =>
      web.get(`/matches/:id/${kind}/`, (request) =>
        page("user", (viewer) =>
          Effect.gen(function* () {
            const m = yield* concours.match(idParam(request.url, 2))
            const digest = kind === "dump" ? m.dumpDigest : m.replayDigest
            if (digest === null) return yield* new NotFound({ what: kind, message: `match ${m.id} has no ${kind}` })
            const bytes = yield* concours.file(digest)
            // stored gzip'd: the browser unpacks it (the original's Content-Encoding: gzip)
            return HttpServerResponse.uint8Array(bytes, {
              contentType: kind === "dump" ? "application/json" : "application/octet-stream",
              headers: { "content-encoding": "gzip", "content-disposition": `attachment; filename="${kind}-${m.id}${kind === "dump" ? ".json" : ""}"` }
            })
          }).pipe(Effect.catchAll((e) => failurePage(viewer, e)))
        )
      )
    yield* download("dump")
    yield* download("replay")
  })
)
