import { Effect, Layer, Schema } from "effect"
import { UDB_SYNC_TOPIC } from "../../protocols/udb.js"
import { loadProfile } from "../../runtime/config.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { type FollowHandler, makeSyncClient, type SyncClientService } from "../sync/client.js"
import { websocketConnector } from "../sync/connection.js"
import { udbFollower } from "./follower.js"

/**
 * `udbsync-passwd.yml`: which roots follow the UDB on this node. Empty lists (the default) start
 * nothing, so a developer's `--layer all` never touches the machine's own /etc/passwd.
 */
export const UdbsyncPasswdProfile = Schema.Struct({
  /** e.g. ["/"] on gw and user machines, ["/", "/export/nfsroot"] on an RHFS. */
  roots: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => [] }),
  /** Roots whose root/.ssh/authorized_keys holds the UDB roots' SSH keys. */
  ssh_roots: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => [] }),
  /** gids for managed groups that do not exist locally (defaults wheel 10, user 10000, orga 10001). */
  group_gids: Schema.optional(
    Schema.Struct({
      wheel: Schema.optionalWith(Schema.Int, { exact: true }),
      user: Schema.optionalWith(Schema.Int, { exact: true }),
      orga: Schema.optionalWith(Schema.Int, { exact: true })
    })
  )
})

/**
 * The udbsync clients of a node (the original udbsync_passwd, udbsync_passwd_nfsroot and
 * udbsync_rootssh): follows the `udb` topic in its `hashes` audience (password hashes for shadow,
 * computed by the hub; never a clear password) with the hub's url from `udbsync-sub.yml` and the
 * secret from `udbsync-shadow.yml`. That secret reads hashes and publishes nothing: the udb
 * topic is written by the UDB service alone.
 * In `/__actors`: `/root/udbsync-passwd`, with `follow-udb` under it when roots are configured.
 */
export const PasswdSyncLayer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const profile = yield* loadProfile("udbsync-passwd", UdbsyncPasswdProfile)
    if (profile.roots.length === 0 && profile.ssh_roots.length === 0) {
      return yield* Effect.logInfo("udbsync-passwd: no roots configured, not following the udb topic")
    }
    const sub = yield* loadProfile("udbsync-sub", SharedSecretProfile)
    const shadow = yield* loadProfile("udbsync-shadow", SharedSecretProfile)
    const client = makeSyncClient({
      connect: websocketConnector(sub.url ?? "http://udbsync/"),
      credentials: (topic) => (topic === UDB_SYNC_TOPIC ? { subscribe: shadow.shared_secret } : {})
    })
    const handler = udbFollower({
      roots: profile.roots,
      sshRoots: profile.ssh_roots,
      ...(profile.group_gids === undefined ? {} : { groupGids: profile.group_gids })
    })
    yield* Effect.logInfo(`udbsync-passwd: following udb for roots [${profile.roots.join(", ")}], ssh roots [${profile.ssh_roots.join(", ")}]`)
    yield* followUdb(client, handler)
  })
).pipe(Layer.provide(supervisorGroup("udbsync-passwd")))

/**
 * Follows the `udb` topic as the supervised loop `follow-udb` of the current supervisor
 * (`/root/udbsync-passwd/follow-udb`): a handler that dies restarts the follower from the
 * revision it held, and the handler sees that state again.
 */
export const followUdb = (client: SyncClientService, handler: FollowHandler) =>
  Effect.flatMap(client.follower(UDB_SYNC_TOPIC, handler), (follower) => supervisedLoop("follow-udb", follower.run))
