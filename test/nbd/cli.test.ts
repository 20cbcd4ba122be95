import { Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import { serve } from "../../src/nbd/cli.js"

// `prolo nbd serve` refuses bad arguments before serving anything, with a message that
// names the problem (the process then exits 2 with it, see bin/prolo.ts).
const failure = (listen: string, exports: ReadonlyArray<string>, defaultName?: string, memoryBudget?: string, deadPeer?: string) =>
  Effect.runPromise(
    Effect.flip(
      serve({ listen, exports, default: Option.fromNullable(defaultName), memoryBudget: Option.fromNullable(memoryBudget), deadPeer: Option.fromNullable(deadPeer) })
    )
  ).then((e) => `${e._tag}: ${e.message}`)

describe("prolo nbd serve", () => {
  it("explains what is wrong with its arguments", async () => {
    expect(await failure("127.0.0.1:0", [])).toMatch(/NbdUsageError: give at least one --export/)
    expect(await failure("nowhere", ["a=mem:1M"])).toMatch(/NbdUsageError: bad --listen "nowhere"/)
    expect(await failure("127.0.0.1:0", ["a"])).toMatch(/NbdUsageError: bad --export "a"/)
    expect(await failure("127.0.0.1:0", ["a=/nonexistent/dir/x.img"])).toMatch(/ExportOpenError: cannot open NBD export file \/nonexistent\/dir\/x.img: ENOENT/)
    expect(await failure("127.0.0.1:0", ["a@1=mem:1M"])).toMatch(/NbdInvalidExport: .*reserved for the generation suffix/)
    expect(await failure("127.0.0.1:0", ["a=mem:1M", "a=mem:2M"])).toMatch(/NbdExportExists/)
    expect(await failure("127.0.0.1:0", ["=mem:1M", "=mem:2M"])).toMatch(/NbdUsageError: more than one --export =FILE/)
    expect(await failure("127.0.0.1:0", ["=mem:1M", "a=mem:1M"], "a")).toMatch(/NbdUsageError: --default a and --export =FILE both name the default export/)
    expect(await failure("127.0.0.1:0", ["a=mem:1M"], "b")).toMatch(/NbdUsageError: --default b: no --export b=… is given/)
    expect(await failure("127.0.0.1:0", ["a=mem:1M"], undefined, "64K")).toMatch(/NbdUsageError: bad --memory-budget "64K": at least 1M/)
    expect(await failure("127.0.0.1:0", ["a=mem:1M"], undefined, undefined, "10")).toMatch(/NbdUsageError: bad --dead-peer "10": expected IDLE,INTERVAL,COUNT/)
    expect(await failure("127.0.0.1:0", ["a=mem:1M"], undefined, undefined, "10,0,5")).toMatch(/NbdUsageError: bad --dead-peer "10,0,5": every figure is at least 1/)
  })
})
