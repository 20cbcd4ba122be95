import { Effect, Schema } from "effect"
import { chmod, mkdir, readFile } from "node:fs/promises"
import * as path from "node:path"
import type { User } from "../../protocols/udb.js"
import { removeStaleTemps, writeFileAtomic } from "./atomic-write.js"
import { authorizedKeys } from "./authorized-keys.js"

// root's SSH access for UDB roots (the original udbsync_rootssh, spec udb.md §5.2), for
// `<root>/root/.ssh/authorized_keys`: directory 0700, file 0600, replaced atomically and only
// when its content changes.

export class RootKeysError extends Schema.TaggedError<RootKeysError>()("RootKeysError", {
  root: Schema.String,
  message: Schema.String
}) {}

export const authorizedKeysFile = (root: string): string => path.join(root, "root", ".ssh", "authorized_keys")

/** Returns whether the file was rewritten. */
export const syncRootKeys = (
  root: string,
  users: ReadonlyArray<Pick<User, "login" | "group" | "ssh_key">>
): Effect.Effect<boolean, RootKeysError> =>
  Effect.tryPromise({
    try: async () => {
      const file = authorizedKeysFile(root)
      const dir = path.dirname(file)
      await mkdir(dir, { recursive: true, mode: 0o700 })
      await chmod(dir, 0o700)
      const text = authorizedKeys(users)
      const current = await readFile(file, "utf8").catch(() => null)
      if (current === text) return false
      await removeStaleTemps(file)
      await writeFileAtomic(file, text, 0o600)
      await chmod(file, 0o600)
      return true
    },
    catch: (e) => new RootKeysError({ root, message: `${root}: cannot update ${authorizedKeysFile(root)}: ${e instanceof Error ? e.message : String(e)}` })
  })
