import { Effect, Schema, type Scope } from "effect"
import type { ExportBackend } from "../../nbd/backend.js"
import { NbdExports } from "../../nbd/exports.js"
import { openFileBackendPromise } from "../../nbd/file-backend.js"

// The one place the HFS uses the NBD export registry: a home is exported under its login,
// at the generation of its latest grant. A new grant of an exported home is
// `NbdExports.grant`, which fences the older generation (cuts its connections and returns once
// their in-flight I/O settled). Image files stay open for the HFS's lifetime (an idle
// HfsActor may be passivated while the home is mounted); they are closed after the listener.

export class HomeExportError extends Schema.TaggedError<HomeExportError>()("HomeExportError", {
  login: Schema.String,
  message: Schema.String
}) {}

export interface HomeExports {
  /** Exports `login`'s image at `generation` (newer than any before), fencing older clients. */
  readonly publish: (login: string, image: string, generation: number) => Effect.Effect<void, HomeExportError>
  /** Live NBD connections to the home. */
  readonly connections: (login: string) => Effect.Effect<number>
  readonly exported: (login: string) => Effect.Effect<boolean>
  /**
   * The fence before a home leaves this HFS: the export is removed (every connection cut once
   * its in-flight I/O settled, new ones refused) and the image closed. No writer is left when
   * it returns. Nothing to do when the home is not exported.
   */
  readonly withdraw: (login: string) => Effect.Effect<void>
}

export const makeHomeExports: Effect.Effect<HomeExports, never, NbdExports | Scope.Scope> = Effect.gen(function* () {
  const exports = yield* NbdExports
  const backends = new Map<string, ExportBackend>()
  yield* Effect.addFinalizer(() =>
    Effect.forEach(
      [...backends],
      ([login, backend]) =>
        Effect.tryPromise(() => backend.close()).pipe(Effect.catchAll((e) => Effect.logWarning(`hfs: closing the image of ${login} failed`, e))),
      { discard: true }
    )
  )
  const failed = (login: string) => (e: { readonly message: string }) =>
    new HomeExportError({ login, message: `cannot export the home of ${login}: ${e.message}` })

  const publish: HomeExports["publish"] = (login, image, generation) =>
    Effect.gen(function* () {
      if (backends.has(login)) {
        yield* Effect.mapError(exports.grant(login, generation), failed(login))
        return
      }
      const backend = yield* Effect.tryPromise({
        try: () => openFileBackendPromise(image, { readOnly: false }),
        catch: (e) => failed(login)({ message: e instanceof Error ? e.message : String(e) })
      })
      backends.set(login, backend)
      yield* exports.add({ name: login, backend, generation, description: `home of ${login}` }).pipe(
        Effect.mapError(failed(login)),
        Effect.tapError(() =>
          Effect.promise(() => {
            backends.delete(login)
            return backend.close()
          })
        )
      )
    })

  const withdraw: HomeExports["withdraw"] = (login) =>
    Effect.gen(function* () {
      const backend = backends.get(login)
      if (backend === undefined) return
      yield* Effect.ignore(exports.remove(login))
      backends.delete(login)
      yield* Effect.tryPromise(() => backend.close()).pipe(Effect.catchAll((e) => Effect.logWarning(`hfs: closing the image of ${login} failed`, e)))
    })

  return {
    publish,
    withdraw,
    connections: (login) => Effect.map(Effect.either(exports.get(login)), (e) => (e._tag === "Right" ? e.right.connections : 0)),
    exported: (login) => Effect.sync(() => backends.has(login))
  }
})
