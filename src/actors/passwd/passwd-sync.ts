import { Clock, Effect, Either, Metric, Schema } from "effect"
import { readFile } from "node:fs/promises"
import * as path from "node:path"
import type { HashedUser } from "../../protocols/udb.js"
import { removeStaleTemps, writeFileAtomic } from "./atomic-write.js"
import { type AccountTexts, DAY_MS, type ManagedGroup, regenerate, type SkippedUser } from "./generate.js"

// One regeneration of a root's account files (the original udbsync_passwd, spec udb.md §5.1):
// read, regenerate (pure), write back only the files that changed, each atomically. Any
// problem leaves every file as it was.

export class AccountSyncError extends Schema.TaggedError<AccountSyncError>()("AccountSyncError", {
  root: Schema.String,
  reason: Schema.Literal("unreadable", "unparsable", "inconsistent", "write"),
  message: Schema.String
}) {}

export const passwdSyncFailures = Metric.counter("prolo_passwd_sync_failures_total", {
  description: "Account-file regenerations aborted (files left untouched), by root and reason",
  incremental: true
})
const writes = Metric.counter("prolo_passwd_sync_writes_total", {
  description: "Account files replaced, by root and file",
  incremental: true
})

const FILES = ["group", "gshadow", "shadow", "passwd"] as const
type FileName = (typeof FILES)[number]
// New files only; an existing file keeps its own mode and owner.
const MODES: Record<FileName, number> = { passwd: 0o644, group: 0o644, shadow: 0o600, gshadow: 0o600 }

export interface AccountSyncOptions {
  readonly root: string
  readonly users: ReadonlyArray<HashedUser>
  readonly groupGids?: Partial<Record<ManagedGroup, number>>
}

export interface AccountSyncOutcome {
  /** Files replaced, in write order; empty when nothing changed. */
  readonly written: ReadonlyArray<string>
  readonly skipped: ReadonlyArray<SkippedUser>
  readonly rehashed: ReadonlyArray<string>
}

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

const readText = (file: string, optional: boolean) =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (e) => e
  }).pipe(
    Effect.catchAll((e) =>
      optional && errnoOf(e) === "ENOENT"
        ? Effect.succeed(null)
        : Effect.fail(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)
    )
  )

export const syncAccountFiles = (options: AccountSyncOptions): Effect.Effect<AccountSyncOutcome, AccountSyncError> =>
  Effect.gen(function* () {
    const { root } = options
    const fileOf = (name: FileName) => path.join(root, "etc", name)
    const fail = (reason: AccountSyncError["reason"], message: string) =>
      Effect.zipRight(
        Metric.increment(Metric.tagged(Metric.tagged(passwdSyncFailures, "root", root), "reason", reason)),
        Effect.fail(new AccountSyncError({ root, reason, message: `${root}: ${message}` }))
      )
    const texts = yield* Effect.all({
      passwd: readText(fileOf("passwd"), false),
      shadow: readText(fileOf("shadow"), false),
      group: readText(fileOf("group"), false),
      gshadow: readText(fileOf("gshadow"), true)
    }).pipe(Effect.catchAll((message) => fail("unreadable", message)))
    const current: AccountTexts = { passwd: texts.passwd!, shadow: texts.shadow!, group: texts.group!, gshadow: texts.gshadow }
    const today = Math.floor((yield* Clock.currentTimeMillis) / DAY_MS)
    const result = regenerate({
      current,
      users: options.users,
      today,
      ...(options.groupGids === undefined ? {} : { groupGids: options.groupGids })
    })
    if (Either.isLeft(result)) {
      const e = result.left
      return yield* fail(e._tag === "UnparsableLine" ? "unparsable" : "inconsistent", `${e.message}; files left untouched`)
    }
    const next = result.right.files
    const written: Array<string> = []
    for (const name of FILES) {
      const text = next[name]
      if (text === null || text === current[name]) continue
      const file = fileOf(name)
      yield* Effect.tryPromise({
        try: async () => {
          await removeStaleTemps(file)
          await writeFileAtomic(file, text, MODES[name])
        },
        catch: (e) => e
      }).pipe(Effect.catchAll((e) => fail("write", `cannot write ${file}: ${e instanceof Error ? e.message : String(e)}`)))
      yield* Metric.increment(Metric.tagged(Metric.tagged(writes, "root", root), "file", name))
      written.push(file)
    }
    return { written, skipped: result.right.skipped, rehashed: result.right.rehashed }
  })
