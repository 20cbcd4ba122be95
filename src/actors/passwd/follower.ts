import { Effect, Either, Schema } from "effect"
import type { FollowHandler } from "../sync/client.js"
import { Group, HashedUser } from "../../protocols/udb.js"
import type { ManagedGroup } from "./generate.js"
import { syncAccountFiles } from "./passwd-sync.js"
import { syncRootKeys } from "./root-ssh.js"

// What a node does with every state of the `udb` topic: regenerate the account files of each
// configured root and root's authorized_keys of each configured SSH root.

export interface UdbFollowerOptions {
  /** Roots whose etc/passwd, shadow, group (and gshadow) follow the UDB, e.g. "/", "/export/nfsroot". */
  readonly roots: ReadonlyArray<string>
  /** Roots whose root/.ssh/authorized_keys holds the SSH keys of UDB `root` users. */
  readonly sshRoots: ReadonlyArray<string>
  readonly groupGids?: Partial<Record<ManagedGroup, number>>
}

const decodeUser = Schema.decodeUnknownEither(HashedUser)
const decodeKeyHolder = Schema.decodeUnknownEither(Schema.Struct({ login: Schema.String, group: Group, ssh_key: Schema.NullOr(Schema.String) }))

export const udbFollower = (options: UdbFollowerOptions): FollowHandler => {
  return (state, _metadata, info) =>
    Effect.gen(function* () {
      const users: Array<HashedUser> = []
      const invalid: Array<string> = []
      for (const [login, record] of state) {
        const decoded = decodeUser(record)
        if (Either.isRight(decoded)) users.push(decoded.right)
        else invalid.push(login)
      }
      if (invalid.length > 0) {
        // Without password hashes (public audience) the shadow file cannot be written: keep it as is.
        yield* Effect.logError(
          `udb follower at revision ${info.revision}: ${invalid.length} record(s) unusable (${invalid.slice(0, 5).join(", ")}` +
            `${invalid.length > 5 ? ", ..." : ""}); passwd sync needs the hash audience's secret (udbsync-shadow.yml); account files left untouched`
        )
      }
      for (const root of options.roots) {
        if (invalid.length > 0) break
        yield* syncAccountFiles({
          root,
          users,
          ...(options.groupGids === undefined ? {} : { groupGids: options.groupGids })
        }).pipe(
          Effect.tap((o) =>
            Effect.all([
              o.written.length === 0
                ? Effect.logDebug(`passwd sync ${root}: revision ${info.revision}, nothing changed`)
                : Effect.logInfo(`passwd sync ${root}: revision ${info.revision}, wrote ${o.written.join(", ")} (${o.rehashed.length} password hash(es) changed)`),
              ...o.skipped.map((s) => Effect.logWarning(`passwd sync ${root}: user ${s.login} left out: ${s.reason}`))
            ])
          ),
          Effect.catchAll((e) => Effect.logError(`passwd sync: ${e.message}`))
        )
      }
      // SSH keys are public: every decodable record counts, whichever audience we are.
      const keyHolders = [...state.values()].flatMap((r) => {
        const decoded = decodeKeyHolder(r)
        return Either.isRight(decoded) ? [decoded.right] : []
      })
      for (const root of options.sshRoots) {
        yield* syncRootKeys(root, keyHolders).pipe(
          Effect.tap((changed) => (changed ? Effect.logInfo(`root ssh keys ${root}: updated`) : Effect.void)),
          Effect.catchAll((e) => Effect.logError(`root ssh keys: ${e.message}`))
        )
      }
    })
}
