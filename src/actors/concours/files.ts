import { Context, Effect, Layer, Schema } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

// The concours' files (champion sources and compiled archives, compilation and match logs,
// dumps, replays, stats) on the web host, addressed by the SHA-256 of their bytes: rows of the
// task tables hold digests, never paths. A file is written once (temp file + fsync + rename,
// so a reader never sees half a file) and never changed; writing the same bytes again is a
// no-op. A file is stored before the row naming it is committed, so a crash can leave an
// unreferenced file (harmless) but never a row naming a missing one.

export const DIGEST = /^[0-9a-f]{64}$/

export class FileStoreError extends Schema.TaggedError<FileStoreError>()("FileStoreError", {
  digest: Schema.String,
  message: Schema.String
}) {}

export interface FileStoreService {
  readonly dir: string
  /** Stores `bytes`; returns their digest. */
  readonly put: (bytes: Uint8Array) => Effect.Effect<string, FileStoreError>
  /** The bytes of `digest`; a bad digest or a missing file is a `FileStoreError` naming it. */
  readonly get: (digest: string) => Effect.Effect<Uint8Array, FileStoreError>
  readonly has: (digest: string) => Effect.Effect<boolean>
}

export const digestOf = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** Bytes of recently read files kept in memory: a tournament sends the same champions again and again. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

export const makeFileStore = (dir: string, cacheBytes: number = DEFAULT_CACHE_BYTES): FileStoreService => {
  // Least recently used first (Map order); files never change, so a cached copy is never stale.
  const cache = new Map<string, Uint8Array>()
  let cached = 0
  const remember = (digest: string, bytes: Uint8Array) => {
    if (bytes.byteLength > cacheBytes / 8) return
    cache.set(digest, bytes)
    cached += bytes.byteLength
    for (const [d, b] of cache) {
      if (cached <= cacheBytes) break
      cache.delete(d)
      cached -= b.byteLength
    }
  }
  const pathOf = (digest: string) => path.join(dir, digest.slice(0, 2), digest)
  const checked = (digest: string) =>
    DIGEST.test(digest) ? Effect.succeed(digest) : Effect.fail(new FileStoreError({ digest, message: `not a SHA-256 digest: ${JSON.stringify(digest.slice(0, 80))}` }))
  return {
    dir,
    put: (bytes) => {
      const digest = digestOf(bytes)
      const target = pathOf(digest)
      return Effect.tryPromise({
        try: async () => {
          if (await fs.stat(target).then(() => true, () => false)) return digest
          await fs.mkdir(path.dirname(target), { recursive: true })
          const tmp = `${target}.${randomBytes(6).toString("hex")}.tmp`
          const handle = await fs.open(tmp, "wx", 0o640)
          try {
            await handle.writeFile(bytes)
            await handle.sync()
          } finally {
            await handle.close()
          }
          await fs.rename(tmp, target)
          return digest
        },
        catch: (e) => new FileStoreError({ digest, message: `cannot store ${digest} in ${dir}: ${describe(e)}` })
      })
    },
    get: (digest) =>
      Effect.flatMap(checked(digest), (d) => {
        const hit = cache.get(d)
        if (hit !== undefined) {
          cache.delete(d)
          cache.set(d, hit)
          return Effect.succeed(hit)
        }
        return Effect.tryPromise({
          try: () => fs.readFile(pathOf(d)).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)),
          catch: (e) => new FileStoreError({ digest: d, message: `cannot read file ${d} from ${dir}: ${describe(e)}` })
        }).pipe(Effect.tap((bytes) => Effect.sync(() => remember(d, bytes))))
      }),
    has: (digest) =>
      DIGEST.test(digest) ? Effect.promise(() => fs.stat(pathOf(digest)).then(() => true, () => false)) : Effect.succeed(false)
  }
}

export class FileStore extends Context.Tag("prolo/concours/FileStore")<FileStore, FileStoreService>() {
  static readonly layer = (dir: string): Layer.Layer<FileStore> => Layer.succeed(FileStore, makeFileStore(dir))
}
