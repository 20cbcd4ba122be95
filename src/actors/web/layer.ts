import { Effect, Layer, type Redacted } from "effect"
import { ConfigDir, loadProfile } from "../../runtime/config.js"
import { PresenceSubProfile, SharedSecretProfile } from "../../runtime/profiles.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { DatabaseLive } from "../../store/database.js"
import * as MdbService from "../mdb/service.js"
import { UdbServerProfile } from "../udb/layer.js"
import * as UdbRepo from "../udb/repo.js"
import * as UdbService from "../udb/service.js"
import { SystemAccounts } from "../udb/system-accounts.js"
import { makeSyncClient } from "../sync/client.js"
import { inProcessConnector, type SyncConnector, websocketConnector } from "../sync/connection.js"
import { SyncHub } from "../sync/hub.js"
import { SyncHubLive } from "../sync/layer.js"
import { machineRoutes } from "./admin-machines.js"
import { userRoutes } from "./admin-users.js"
import { WebProfile } from "./config.js"
import { WebDirectory, type WebSyncClients } from "./directory.js"
import { loginRoutes } from "./login.js"
import { roomMapRoutes } from "./room-map.js"
import { apiRoutes } from "./concours/api.js"
import { championRoutes } from "./concours/champion-pages.js"
import { homeRoutes } from "./concours/home.js"
import { mapRoutes } from "./concours/map-pages.js"
import { matchRoutes } from "./concours/match-pages.js"
import * as ConcoursService from "./concours/service.js"
import { statusRoutes } from "./concours/status-page.js"
import { tournamentMatrixRoutes } from "./concours/tournament-matrix.js"
import { tournamentRoutes } from "./concours/tournament-pages.js"
import * as TournamentService from "./concours/tournaments.js"
import { FileStore } from "../concours/files.js"
import * as path from "node:path"
import { makeSessionRevocations } from "./session-revocations.js"
import { WebSettingsTag } from "./viewer.js"

// The website (role `web`, and `--layer all`): login, the admin site (machines, users, live
// room map). Reads who is who from the mdb, udb (hash audience) and presence topics; writes
// machines and users through the MDB and UDB services over the shared database, so the pages
// get the same checks and the same change-log publication as `prolo mdb` and `prolo udb`.
// In `/__actors`: `/root/web` with its followers `follow-mdb`, `follow-udb`, `follow-presence`.

/** How long a request waits for the first udb snapshot after a start before answering "retry". */
export const DIRECTORY_READY_WAIT = "5 seconds"

const secret = (profile: string) => loadProfile(profile, SharedSecretProfile)

/** The three followers' secrets and hub URLs (`*-sub.yml`, `udbsync-shadow.yml`). */
const syncClients = (connect: (url: string | undefined, fallback: string) => SyncConnector) =>
  Effect.gen(function* () {
    const mdb = yield* secret("mdbsync-sub")
    const udb = yield* secret("udbsync-sub")
    const shadow = yield* secret("udbsync-shadow")
    const presence = yield* loadProfile("presencesync-sub", PresenceSubProfile)
    const client = (topic: string, conn: SyncConnector, key: Redacted.Redacted<string>) =>
      makeSyncClient({ connect: conn, credentials: (t) => (t === topic ? { subscribe: key } : {}) })
    return {
      mdb: client("mdb", connect(mdb.url, "http://mdbsync/"), mdb.shared_secret),
      udb: client("udb", connect(udb.url, "http://udbsync/"), shadow.shared_secret),
      presence: client("presence", connect(presence.url, "http://presencesync/"), presence.shared_secret)
    } satisfies WebSyncClients
  })

const webSubsystem = <E, R>(clients: Effect.Effect<WebSyncClients, E, R>) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const profile = yield* loadProfile("web", WebProfile)
      const { system_passwd } = yield* loadProfile("udb-server", UdbServerProfile)
      const followed = yield* clients
      const settings = Layer.succeed(WebSettingsTag, {
        secret: profile.session_secret,
        ssoProxies: new Set(profile.sso_proxies),
        sessionMillis: profile.session_hours * 3_600_000,
        secureCookie: profile.secure_cookie,
        revoked: makeSessionRevocations()
      })
      const udb = UdbService.layer.pipe(Layer.provideMerge(Layer.merge(UdbRepo.layer, SystemAccounts.fromFile(system_passwd))))
      // Relative to the configuration directory, as secret files are.
      const filesDir = path.resolve(yield* ConfigDir, profile.concours.files_dir)
      const concours = ConcoursService.layer(profile.concours).pipe(Layer.provide(FileStore.layer(filesDir)))
      return Layer.mergeAll(loginRoutes, machineRoutes, userRoutes, roomMapRoutes, homeRoutes, championRoutes, matchRoutes, mapRoutes, apiRoutes, tournamentRoutes, tournamentMatrixRoutes, statusRoutes).pipe(
        Layer.provide(settings),
        Layer.provide(concours),
        Layer.provide(TournamentService.layer(profile.concours)),
        Layer.provide(WebDirectory.following(followed, DIRECTORY_READY_WAIT)),
        Layer.provide(MdbService.layer),
        Layer.provide(udb),
        Layer.provide(supervisorGroup("web"))
      )
    })
  ).pipe(Layer.provide(DatabaseLive))

/** `prolo-node` subsystem, role web: the topics from the gateway's hub (URLs of the `*-sub.yml` profiles). */
export const WebLayer = webSubsystem(syncClients((url, fallback) => websocketConnector(url ?? fallback)))

/** `--layer all`: the topics from the node's own hub (the same SyncHubLive value the sync subsystem uses). */
export const WebLocalLayer = Layer.unwrapEffect(
  Effect.map(SyncHub, (hub) => {
    const connect = Effect.provideService(inProcessConnector, SyncHub, hub)
    return webSubsystem(syncClients(() => connect))
  })
).pipe(Layer.provide(SyncHubLive))
