import { Context, Effect, Layer, Schema, Scope } from "effect"

// What `GET /__actors` shows for one live actor, keyed registry, supervisor or supervised loop
// (supervised-loop.ts). `kind` and `children` are optional so probes written before they existed
// still fit.
export const ActorInfo = Schema.Struct({
  path: Schema.String,
  mailboxDepth: Schema.Number,
  handled: Schema.Number,
  restarts: Schema.Number,
  ageSeconds: Schema.Number,
  kind: Schema.optional(Schema.Literal("actor", "registry", "supervisor", "loop")),
  children: Schema.optional(Schema.Number)
})
export type ActorInfo = typeof ActorInfo.Type

// Registry of live actors for introspection. Actors register a probe on start and
// remove it when they stop; the HTTP host renders `snapshot` at `/__actors`.
// Entries are kept per registration, not per path: a passivated actor's late
// unregistration must not remove the fresh actor that took over its path.
export class ActorTree extends Context.Tag("prolo/ActorTree")<
  ActorTree,
  {
    readonly register: (path: string, probe: Effect.Effect<ActorInfo>) => Effect.Effect<void>
    // Removes every registration under exactly this path.
    readonly unregister: (path: string) => Effect.Effect<void>
    // Registration tied to the current scope; the returned effect removes only this one
    // (idempotent), so a stopping actor can leave early and its scope closing later is harmless.
    readonly registerScoped: (
      path: string,
      probe: Effect.Effect<ActorInfo>
    ) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
    readonly snapshot: Effect.Effect<ReadonlyArray<ActorInfo>>
  }
>() {
  static readonly layer = Layer.sync(ActorTree, () => {
    const entries = new Map<number, { readonly path: string; readonly probe: Effect.Effect<ActorInfo> }>()
    let nextId = 0
    const add = (path: string, probe: Effect.Effect<ActorInfo>) =>
      Effect.sync(() => {
        const id = nextId++
        entries.set(id, { path, probe })
        return Effect.sync(() => {
          entries.delete(id)
        })
      })
    return {
      register: (path, probe) => Effect.asVoid(add(path, probe)),
      unregister: (path) =>
        Effect.sync(() => {
          for (const [id, entry] of entries) if (entry.path === path) entries.delete(id)
        }),
      registerScoped: (path, probe) =>
        Effect.acquireRelease(add(path, probe), (remove) => remove),
      snapshot: Effect.suspend(() => Effect.all([...entries.values()].map((e) => e.probe))).pipe(
        Effect.map((infos) => [...infos].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)))
      )
    }
  })
}
