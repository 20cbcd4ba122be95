import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { verifyCrypt } from "../../../runtime/shadow-hash.js"
import { isStaff, WebDirectory, type WebUser } from "../directory.js"
import { checkCsrf } from "../session.js"
import { currentViewer, type Viewer, WebSettingsTag } from "../viewer.js"
import { webRouter } from "../web-router.js"
import { filtersOf } from "./match-pages.js"
import type { Champion, GameMap, Match, Page } from "./model.js"
import { championLanguage } from "./archive.js"
import { Concours, Priority } from "./service.js"
import { Tournaments, type TournamentRow } from "./tournaments.js"

// The original's REST API (Django REST framework under /api/), same paths and JSON shapes, so
// that contestants' scripts and `prolo concours` keep working: pages of 10
// `{count, next, previous, results}`, hyperlinked objects (`url`), `author` as
// `{url, id, username}`. Who: the site's session (writes also need `X-CSRFToken`, as DRF's
// SessionAuthentication), X-SSO-User from nginx (same), or HTTP Basic login:password (scripts).
//
//   GET  /api/users/[ID/]                       GET  /api/maps/[ID/]     POST /api/maps/ {name, contents}
//   GET  /api/champions/[ID/][?mine]            POST /api/champions/ (multipart: name, sources, comment)
//   DELETE /api/champions/ID/ (author)          GET  /api/matches/[ID/][?author=&champion=&champion-author=]
//   POST /api/matches/ {champion_1..N, map}     GET  /api/matches/interesting/
//   GET  /api/tournaments/[ID/]  GET /api/tournaments/ID/{stats,lang_share}/  GET /api/tournaments/evolution/
//
// DELETE answers 204 (author only, soft delete). Unlike the original, API match creation checks that the champions are ready (and yours with
// fight_only_own_champions); it is not throttled (scripts) and runs at DEFAULT priority (500),
// below the web form's 700.

const PAGE = 10

const STATUS_HUMAN: Record<string, string> = {
  new: "En attente de compilation",
  pending: "En cours de compilation",
  ready: "Compilé et prêt",
  error: "Erreur de compilation",
  failed: "Échec",
  creating: "En cours de création",
  done: "Terminé"
}
const MATCH_HUMAN: Record<string, string> = { ...STATUS_HUMAN, new: "En attente de lancement", pending: "En cours d'exécution" }

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const problem = (status: number, detail: string) => json({ detail }, status)

const apiViewer = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const auth = request.headers["authorization"]
  if (auth !== undefined && auth.startsWith("Basic ")) {
    const [login = "", ...rest] = Buffer.from(auth.slice(6), "base64").toString("utf8").split(":")
    const user = yield* (yield* WebDirectory).user(login)
    if (user?.passwordHash === undefined || !verifyCrypt(rest.join(":"), user.passwordHash)) return { viewer: undefined, basic: true }
    const viewer: Viewer = { login, group: user.group, staff: isStaff(user), via: "session", csrf: "", binding: "" }
    return { viewer, basic: true }
  }
  return { viewer: yield* currentViewer, basic: false }
})

type Handler = (viewer: Viewer, base: string) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>

const guarded = (write: boolean, handle: Handler) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const found = yield* Effect.either(apiViewer)
    if (found._tag === "Left") return problem(503, found.left.message)
    const { viewer, basic } = found.right
    if (viewer === undefined) return problem(basic ? 401 : 403, basic ? "Invalid username/password." : "Authentication credentials were not provided.")
    if (write && !basic) {
      const settings = yield* WebSettingsTag
      if (!checkCsrf(settings.secret, viewer.login, viewer.binding, request.headers["x-csrftoken"])) return problem(403, "CSRF Failed: CSRF token missing or incorrect.")
    }
    const host = request.headers["host"] ?? "localhost"
    return yield* handle(viewer, `http://${host}/api`)
  })

export const pageJson = <A>(base: string, path: string, url: string, page: number, found: Page<A>, shape: (a: A) => unknown) => {
  const link = (n: number) => {
    const u = new URL(url, "http://x")
    u.searchParams.set("page", String(n))
    return `${base}${path}${u.search}`
  }
  return {
    count: found.count,
    next: page * PAGE < found.count ? link(page + 1) : null,
    previous: page > 1 ? link(page - 1) : null,
    results: found.results.map(shape)
  }
}

const pageParam = (url: string) => {
  const n = Number(new URL(url, "http://x").searchParams.get("page") ?? "1")
  return Number.isSafeInteger(n) && n >= 1 ? n : 1
}

export const apiShapes = (base: string, userId: (login: string) => number) => {
  const author = (login: string) => ({ url: `${base}/users/${userId(login)}/`, id: userId(login), username: login })
  return {
    author,
    champion: (c: Champion) => ({
      url: `${base}/champions/${c.id}/`,
      id: c.id,
      author: author(c.author),
      status: c.status,
      status_human: STATUS_HUMAN[c.status] ?? c.status,
      created: c.created,
      name: c.name,
      comment: c.comment
    }),
    match: (m: Match) => ({
      url: `${base}/matches/${m.id}/`,
      id: m.id,
      author: author(m.author),
      status: m.status,
      status_human: MATCH_HUMAN[m.status] ?? m.status,
      tournament: m.tournament === null ? null : `${base}/tournaments/${m.tournament}/`,
      players: m.players.map((p) => `${base}/champions/${p.champion}/`),
      created: m.created
    }),
    map: (m: GameMap) => ({
      url: `${base}/maps/${m.id}/`,
      id: m.id,
      author: author(m.author),
      official: m.official,
      created: m.created,
      name: m.name,
      contents: m.contents
    })
  }
}

/** Fisher–Yates on a copy (`/api/matches/interesting/` is random by design). */
const shuffled = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const idAt = (url: string) => {
  const raw = new URL(url, "http://x").pathname.split("/")[3] ?? ""
  return /^\d{1,9}$/.test(raw) ? Number(raw) : -1
}

export const apiRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const concours = yield* Concours
    const tournaments = yield* Tournaments
    const directory = yield* WebDirectory
    const web = yield* webRouter(router)
    const userId = (login: string) => directory.users().find((u) => u.login === login)?.id ?? 0
    const notFound = () => Effect.succeed(problem(404, "Not found."))
    const fail = (e: { readonly _tag: string; readonly message: string }) =>
      Effect.succeed(
        e._tag === "NotFound" ? problem(404, "Not found.") : e._tag === "Forbidden" ? problem(403, e.message) : e._tag === "ConcoursUnavailable" ? problem(503, e.message) : problem(400, e.message)
      )
    const userJson = (base: string, u: WebUser) => ({ url: `${base}/users/${u.id}/`, id: u.id, username: u.login })

    yield* web.get("/api/users/", (request) =>
      guarded(false, (_viewer, base) => {
        const page = pageParam(request.url)
        const users = directory.users().slice().sort((a, b) => a.id - b.id)
        return Effect.succeed(
          json(pageJson(base, "/users/", request.url, page, { count: users.length, results: users.slice((page - 1) * PAGE, page * PAGE) }, (u) => userJson(base, u)))
        )
      })
    )
    yield* web.get("/api/users/:id/", (request) =>
      guarded(false, (_viewer, base) => {
        const u = directory.users().find((x) => x.id === idAt(request.url))
        if (u === undefined) return notFound()
        const shapes = apiShapes(base, userId)
        return Effect.all([concours.champions({ author: u.login, offset: 0, limit: 1000 }), concours.matches({ author: u.login }, 0, 1000), concours.maps]).pipe(
          Effect.map(([champions, matches, maps]) =>
            json({
              ...userJson(base, u),
              maps: maps.filter((m) => m.author === u.login).map(shapes.map),
              matches: matches.results.map(shapes.match),
              champions: champions.results.map(shapes.champion)
            })
          ),
          Effect.catchAll(fail)
        )
      })
    )
    yield* web.get("/api/champions/", (request) =>
      guarded(false, (viewer, base) => {
        const page = pageParam(request.url)
        const mine = new URL(request.url, "http://x").searchParams.has("mine")
        if (!mine && concours.settings.fight_only_own_champions && !viewer.staff) return Effect.succeed(problem(403, "You do not have permission to perform this action."))
        return concours.champions({ ...(mine ? { author: viewer.login } : {}), offset: (page - 1) * PAGE, limit: PAGE }).pipe(
          Effect.map((found) => json(pageJson(base, "/champions/", request.url, page, found, apiShapes(base, userId).champion))),
          Effect.catchAll(fail)
        )
      })
    )
    yield* web.get("/api/champions/:id/", (request) =>
      guarded(false, (_viewer, base) =>
        concours.champion(idAt(request.url)).pipe(
          Effect.flatMap((c) => (c.deleted ? notFound() : Effect.succeed(json(apiShapes(base, userId).champion(c))))),
          Effect.catchAll(fail)
        )
      )
    )
    // The handlers' `request` argument is the one before the bounded read: the body is on the context's.
    const body = HttpServerRequest.HttpServerRequest
    yield* web.post(
      "/api/champions/",
      () =>
        guarded(true, (viewer, base) =>
          Effect.gen(function* () {
            const request = yield* body
            const parsed = yield* Effect.either(
              Effect.flatMap(request.arrayBuffer, (b) => Effect.tryPromise(() => new Response(b, { headers: { "content-type": request.headers["content-type"] ?? "" } }).formData()))
            )
            if (parsed._tag === "Left") return problem(400, "expected multipart/form-data with name, sources and comment")
            const form = parsed.right
            const file = form.get("sources")
            const sources = typeof file === "string" || file === null ? new Uint8Array() : new Uint8Array(yield* Effect.promise(() => file.arrayBuffer()))
            return yield* concours.uploadChampion(viewer, { name: String(form.get("name") ?? ""), comment: String(form.get("comment") ?? ""), sources }).pipe(
              Effect.map((c) => {
                const shaped = apiShapes(base, userId).champion(c)
                return json(shaped, 201).pipe(HttpServerResponse.setHeader("location", shaped.url))
              }),
              Effect.catchAll((e) => (e._tag === "ChampionRefused" ? Effect.succeed(json({ [e.field]: [e.message] }, 400)) : fail(e)))
            )
          })
        ),
      () => concours.settings.max_upload_bytes + 64 * 1024
    )
    yield* web.delete("/api/champions/:id/", (request) =>
      guarded(true, (viewer) =>
        concours.deleteChampion(viewer, idAt(request.url)).pipe(
          Effect.as(HttpServerResponse.empty({ status: 204 })),
          Effect.catchAll(fail)
        )
      )
    )
    yield* web.get("/api/maps/", (request) =>
      guarded(false, (_viewer, base) => {
        const page = pageParam(request.url)
        return concours.maps.pipe(
          Effect.map((maps) =>
            json(pageJson(base, "/maps/", request.url, page, { count: maps.length, results: maps.slice((page - 1) * PAGE, page * PAGE) }, apiShapes(base, userId).map))
          ),
          Effect.catchAll(fail)
        )
      })
    )
    yield* web.get("/api/maps/:id/", (request) =>
      guarded(false, (_viewer, base) =>
        concours.map(idAt(request.url)).pipe(
          Effect.map((m) => json(apiShapes(base, userId).map(m))),
          Effect.catchAll(fail)
        )
      )
    )
    yield* web.post(
      "/api/maps/",
      () =>
        guarded(true, (viewer, base) =>
          Effect.gen(function* () {
            const request = yield* body
            const parsed = yield* Effect.either(request.json)
            const fields = parsed._tag === "Right" && typeof parsed.right === "object" && parsed.right !== null ? (parsed.right as Record<string, unknown>) : {}
            return yield* concours.createMap(viewer, { name: String(fields["name"] ?? ""), contents: String(fields["contents"] ?? "") }).pipe(
              Effect.map((m) => json(apiShapes(base, userId).map(m), 201)),
              Effect.catchAll((e) => (e._tag === "MapRefused" ? Effect.succeed(json({ [e.field]: [e.message] }, 400)) : fail(e)))
            )
          })
        ),
      (l) => l.rpcBodyBytes
    )
    yield* web.get("/api/matches/", (request) =>
      guarded(false, (_viewer, base) => {
        const page = pageParam(request.url)
        return concours.matches(filtersOf(request.url), (page - 1) * PAGE, PAGE).pipe(
          Effect.map((found) => json(pageJson(base, "/matches/", request.url, page, found, apiShapes(base, userId).match))),
          Effect.catchAll(fail)
        )
      })
    )
    yield* web.get("/api/matches/:id/", (request) =>
      guarded(false, (_viewer, base) =>
        concours.match(idAt(request.url)).pipe(
          Effect.map((m) => json(apiShapes(base, userId).match(m))),
          Effect.catchAll(fail)
        )
      )
    )
    yield* web.post("/api/matches/", () =>
      guarded(true, (viewer, base) =>
        Effect.gen(function* () {
          const request = yield* body
          const contentType = request.headers["content-type"] ?? ""
          const fields: Record<string, unknown> = contentType.includes("json")
            ? yield* Effect.map(Effect.either(request.json), (b) => (b._tag === "Right" && typeof b.right === "object" && b.right !== null ? (b.right as Record<string, unknown>) : {}))
            : Object.fromEntries(yield* Effect.orElseSucceed(request.urlParamsBody, () => []))
          const asId = (v: unknown) => (typeof v === "number" ? v : typeof v === "string" && /^\d{1,9}$/.test(v) ? Number(v) : -1)
          const champions = Array.from({ length: concours.settings.nb_players }, (_, i) => asId(fields[`champion_${i + 1}`]))
          const map = fields["map"] === undefined || fields["map"] === null || fields["map"] === "" ? undefined : asId(fields["map"])
          return yield* concours.launchMatch(viewer, { champions, map, priority: Priority.default, throttle: false }).pipe(
            Effect.map((m) => {
              const url = `${base}/matches/${m.id}/`
              return json({ url }, 201).pipe(HttpServerResponse.setHeader("location", url))
            }),
            Effect.catchAll((e) => (e._tag === "MatchRefused" ? Effect.succeed(json({ non_field_errors: [e.message] }, 400)) : fail(e)))
          )
        })
      )
    )
    // The original answers an unpaged list: of the best done matches, in a random order.
    yield* web.get("/api/matches/interesting/", () =>
      guarded(false, (_viewer, base) =>
        concours.interestingMatches.pipe(
          Effect.map((found) => json(shuffled(found).map(apiShapes(base, userId).match))),
          Effect.catchAll(fail)
        )
      )
    )
    // The original's TournamentSerializer nests the players (champions), maps and matches; we add
    // `url` and `id`. Contestants see the visible tournaments only (others are 404).
    const tournamentJson = (base: string, t: TournamentRow, staff: boolean) =>
      Effect.gen(function* () {
        const shapes = apiShapes(base, userId)
        const members = yield* tournaments.members(t.id, staff)
        const players = yield* Effect.forEach(members.players, (p) => concours.champion(p.champion))
        const maps = yield* Effect.forEach(members.maps, (id) => concours.map(id))
        const matches = yield* concours.matches({ tournament: t.id }, 0, 1_000_000)
        return {
          url: `${base}/tournaments/${t.id}/`,
          id: t.id,
          name: t.name,
          players: players.map(shapes.champion),
          maps: maps.map(shapes.map),
          matches: matches.results.map(shapes.match),
          created: t.created
        }
      })
    yield* web.get("/api/tournaments/", (request) =>
      guarded(false, (viewer, base) => {
        const page = pageParam(request.url)
        return tournaments.list(viewer.staff).pipe(
          Effect.flatMap((all) =>
            Effect.map(Effect.forEach(all.slice((page - 1) * PAGE, page * PAGE), (t) => tournamentJson(base, t, viewer.staff)), (results) =>
              json(pageJson(base, "/tournaments/", request.url, page, { count: all.length, results }, (x) => x))
            )
          ),
          Effect.catchAll(fail)
        )
      })
    )
    yield* web.get("/api/tournaments/:id/", (request) =>
      guarded(false, (viewer, base) =>
        tournaments.members(idAt(request.url), viewer.staff).pipe(
          Effect.flatMap((m) => tournamentJson(base, m.tournament, viewer.staff)),
          Effect.map((t) => json(t)),
          Effect.catchAll(fail)
        )
      )
    )
    // The original's per-champion figures (`sloc` is not computed here: null).
    const statsOf = (id: number, staff: boolean) =>
      Effect.flatMap(tournaments.members(id, staff), (m) =>
        Effect.forEach(m.players, (p) =>
          Effect.gen(function* () {
            const c = yield* concours.champion(p.champion)
            const sources = yield* Effect.either(concours.file(c.sourcesDigest))
            const lang = sources._tag === "Right" ? championLanguage(sources.right) : undefined
            return {
              name: c.name,
              author: c.author,
              sloc: null,
              language: { code: lang?.ok === true ? lang.lang : null },
              tournament_score: p.score,
              sum_match_score: p.matchScore,
              avg_match_score: p.matches === 0 ? 0 : p.matchScore / p.matches,
              num_matches: p.matches
            }
          })
        )
      )
    yield* web.get("/api/tournaments/:id/stats/", (request) =>
      guarded(false, (viewer) => statsOf(idAt(request.url), viewer.staff).pipe(Effect.map((stats) => json(stats)), Effect.catchAll(fail)))
    )
    // How many champions per language (the original's chart feed, `{name, y}`).
    yield* web.get("/api/tournaments/:id/lang_share/", (request) =>
      guarded(false, (viewer) =>
        statsOf(idAt(request.url), viewer.staff).pipe(
          Effect.map((stats) => {
            const counts = new Map<string, number>()
            for (const c of stats) counts.set(c.language.code ?? "?", (counts.get(c.language.code ?? "?") ?? 0) + 1)
            return json([...counts].map(([name, y]) => ({ name, y })))
          }),
          Effect.catchAll(fail)
        )
      )
    )
    // Each author's rank (1 = best score, no ex aequo, as the original) in every tournament, oldest first.
    yield* web.get("/api/tournaments/evolution/", () =>
      guarded(false, (viewer) =>
        Effect.gen(function* () {
          const all = [...(yield* tournaments.list(viewer.staff))].sort((a, b) => a.id - b.id)
          const rankings = new Map<string, Array<number | null>>()
          for (const [i, t] of all.entries()) {
            const { standings } = yield* tournaments.standings(t.id, viewer.staff)
            for (const [rank, s] of [...standings].sort((a, b) => b.score - a.score).entries()) {
              const row = rankings.get(s.author) ?? all.map(() => null)
              row[i] = rank + 1
              rankings.set(s.author, row)
            }
          }
          const series = [...rankings]
            .sort((a, b) => (a[1][a[1].length - 1] ?? 0) - (b[1][b[1].length - 1] ?? 0))
            .map(([name, data]) => ({ name, data, visible: false }))
          return json({ series, categories: all.map((t) => t.name) })
        }).pipe(Effect.catchAll(fail))
      )
    )
  })
)
