import { Schema } from "effect"

// What prolo-pam keeps between the PAM stages of one login on a user machine, one root-only
// file per login in `/run/prolo-pam/<login>` (tmpfs: a reboot forgets every session). The
// account stage writes it with the grant it got (so open_session never asks the HFS again),
// open_session records what it attached, close_session reads it to detach exactly that.
// presenced reads the same files: a user whose home is attached here is heartbeated, whether
// or not logind or utmp know of a session (a greeter that crashed, a test without logind).

export const PAM_STATE_DIR = "/run/prolo-pam"

export const AttachedFuse = Schema.TaggedStruct("fuse", {
  /** The nbdfuse process serving the export as a file. */
  pid: Schema.Int,
  /** Its FUSE mount point (holds the file `nbd`). */
  fuseDir: Schema.String,
  /** The loop device over that file, once set up. */
  loop: Schema.NullOr(Schema.String)
})

export const AttachedKernel = Schema.TaggedStruct("kernel", {
  /** `/dev/nbdN`, one per session. */
  device: Schema.String
})

export const Attachment = Schema.Union(AttachedFuse, AttachedKernel)
export type Attachment = typeof Attachment.Type

export const PamSession = Schema.Struct({
  login: Schema.String,
  hostname: Schema.String,
  uid: Schema.Int,
  gid: Schema.Int,
  /**
   * The getHome answer the account stage got (its export name carries the secret: root-only
   * file); null from presence's yes until the HFS answered (a migration may take a while, and
   * the file already makes presenced keep the lease).
   */
  grant: Schema.NullOr(Schema.Struct({ host: Schema.String, port: Schema.Int, export: Schema.String, generation: Schema.Int })),
  attachment: Schema.NullOr(Attachment),
  /** Where the home is mounted, once it is. */
  mountpoint: Schema.NullOr(Schema.String)
})
export type PamSession = typeof PamSession.Type

export const decodePamSession = Schema.decodeUnknownEither(Schema.parseJson(PamSession))
export const encodePamSession = (s: PamSession): string => `${JSON.stringify(s)}\n`
