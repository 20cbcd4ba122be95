import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { ActorTree, type ActorInfo } from "../../src/runtime/actor-tree.js"

const info = (path: string, handled: number): ActorInfo => ({
  path,
  mailboxDepth: 0,
  handled,
  restarts: 0,
  ageSeconds: 0
})

describe("ActorTree", () => {
  it.scoped("a late scoped unregistration removes only its own entry, not a newer one at the same path", () =>
    Effect.gen(function* () {
      const tree = yield* ActorTree
      const old = yield* Scope.make()
      yield* tree.registerScoped("/root/hfs/alice", Effect.succeed(info("/root/hfs/alice", 1))).pipe(Scope.extend(old))
      const fresh = yield* Scope.make()
      yield* tree.registerScoped("/root/hfs/alice", Effect.succeed(info("/root/hfs/alice", 2))).pipe(Scope.extend(fresh))
      yield* Scope.close(old, Exit.void)
      expect(yield* tree.snapshot).toEqual([info("/root/hfs/alice", 2)])
      yield* Scope.close(fresh, Exit.void)
      expect(yield* tree.snapshot).toEqual([])
    }).pipe(Effect.provide(ActorTree.layer))
  )

  it.effect("register/unregister by path, snapshot sorted by path", () =>
    Effect.gen(function* () {
      const tree = yield* ActorTree
      yield* tree.register("/root/b", Effect.succeed(info("/root/b", 0)))
      yield* tree.register("/root", Effect.succeed(info("/root", 0)))
      yield* tree.register("/root/a", Effect.succeed(info("/root/a", 0)))
      expect((yield* tree.snapshot).map((i) => i.path)).toEqual(["/root", "/root/a", "/root/b"])
      yield* tree.unregister("/root/a")
      expect((yield* tree.snapshot).map((i) => i.path)).toEqual(["/root", "/root/b"])
    }).pipe(Effect.provide(ActorTree.layer))
  )
})
