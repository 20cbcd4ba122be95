import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { localClusterStatus } from "../../src/actors/cluster/local-master.js"

describe("/status/ without a master", () => {
  it("reads ClusterUnavailable (the page's 'master node inaccessible') while no master runs in the process", async () => {
    const exit = await Effect.runPromiseExit(localClusterStatus)
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) expect(JSON.stringify(exit.cause)).toContain("the cluster master of this node is not running")
  })
})
