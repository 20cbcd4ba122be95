import { Context, Effect, Layer, Ref, Schema } from "effect"

// What `GET /__actors` shows for one live actor.
export const ActorInfo = Schema.Struct({
  path: Schema.String,
  mailboxDepth: Schema.Number,
  handled: Schema.Number,
  restarts: Schema.Number,
  ageSeconds: Schema.Number
})
export type ActorInfo = typeof ActorInfo.Type

// Registry of live actors for introspection. Actors register a probe on start and
// remove it when they stop; the HTTP host renders `snapshot` at `/__actors`.
export class ActorTree extends Context.Tag("prolo/ActorTree")<
  ActorTree,
  {
    readonly register: (path: string, probe: Effect.Effect<ActorInfo>) => Effect.Effect<void>
    readonly unregister: (path: string) => Effect.Effect<void>
    readonly snapshot: Effect.Effect<ReadonlyArray<ActorInfo>>
  }
>() {
  static readonly layer = Layer.effect(
    ActorTree,
    Effect.gen(function* () {
      const probes = yield* Ref.make(new Map<string, Effect.Effect<ActorInfo>>())
      return {
        register: (path, probe) => Ref.update(probes, (m) => new Map(m).set(path, probe)),
        unregister: (path) =>
          Ref.update(probes, (m) => {
            const next = new Map(m)
            next.delete(path)
            return next
          }),
        snapshot: Ref.get(probes).pipe(
          Effect.flatMap((m) => Effect.all([...m.values()])),
          Effect.map((infos) => [...infos].sort((a, b) => a.path.localeCompare(b.path)))
        )
      }
    })
  )
}
