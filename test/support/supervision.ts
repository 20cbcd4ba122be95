import { Effect, Layer } from "effect"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { RootSupervisor } from "../../src/runtime/supervisor.js"

/**
 * The actor tree and a root supervisor that does not end the process, for tests of parts that
 * run supervised loops or actors but do not test supervision itself (an escalation is still
 * logged at error level). Tests of escalation use test/runtime/actor-fixtures.ts `withRoot`.
 */
export const testSupervision = RootSupervisor.layerWithExit(() => Effect.void).pipe(Layer.provideMerge(ActorTree.layer))
