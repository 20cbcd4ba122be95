import { createHash } from "node:crypto"
import * as path from "node:path"
import { Either } from "effect"
import { InvalidHfsRequest } from "../../protocols/hfs.js"
import { LOGIN_PATTERN } from "../../protocols/udb.js"

// Names that reach the file system: checked before anything is looked up or created (the
// original built paths from the raw login: `../x` escaped the image directory).

const shown = (value: string) => (value.length > 80 ? `${value.slice(0, 80)}…` : value)

/** A UDB login (1 to 31 of a-z 0-9 _, not starting with a digit): no `/`, no `..`, nothing else. */
export const validateLogin = (login: string): Either.Either<string, InvalidHfsRequest> =>
  LOGIN_PATTERN.test(login)
    ? Either.right(login)
    : Either.left(
        new InvalidHfsRequest({
          field: "login",
          value: shown(login),
          message: `invalid login ${JSON.stringify(shown(login))}: expected 1 to 31 characters a-z, 0-9, _ (not starting with a digit)`
        })
      )

// As MDB's machine names (src/store/migrations/0002_mdb.ts).
const HOSTNAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]+)?$/

export const validateHostname = (hostname: string): Either.Either<string, InvalidHfsRequest> =>
  hostname.length <= 64 && HOSTNAME.test(hostname)
    ? Either.right(hostname)
    : Either.left(
        new InvalidHfsRequest({
          field: "hostname",
          value: shown(hostname),
          message: `invalid hostname ${JSON.stringify(shown(hostname))}: expected a machine name (a-z, 0-9, -)`
        })
      )

/** The ext4 volume label holds 16 bytes. */
export const LABEL_BYTES = 16

/**
 * A home's ext4 label: the login when it fits; otherwise its first 9 characters, `~` and 6 hex
 * digits of its SHA-256, so that two long logins with a common prefix never share a label
 * (the original let mkfs truncate: `abcdefghijklmnopq` and `abcdefghijklmnopr` collided).
 */
export const labelOf = (login: string): string =>
  login.length <= LABEL_BYTES ? login : `${login.slice(0, 9)}~${createHash("sha256").update(login).digest("hex").slice(0, 6)}`

/** `<export_base>/hfs<id>` (the original's layout). */
export const imageDirOf = (exportBase: string, hfs: number): string => path.join(exportBase, `hfs${hfs}`)

/** `<dir>/<login>.nbd`; the login must have been validated. */
export const imagePathOf = (dir: string, login: string): string => path.join(dir, `${login}.nbd`)
