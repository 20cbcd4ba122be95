import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { openFileBackendPromise } from "../../src/nbd/file-backend.js"
import { Cmd, Opt } from "../../src/nbd/protocol.js"
import { infoData, option, request, startServer, until } from "./harness.js"

const MiB = 1024 * 1024
const GiB = 1024 * MiB

// A client asks for 1 GiB (32 pipelined READs of the 32 MiB maximum payload) of a sparse
// 1 GiB file and reads nothing. The server may hold at most its per-connection buffer
// budget (8 MiB by default, or one request of the 32 MiB maximum payload, whichever is
// larger) plus what the kernel socket buffers take: RSS growth must
// stay under 64 MiB. (That admission resumes correctly once replies are read is covered
// in transmission.test.ts.)
describe("nbd memory bound", () => {
  it("a client that stops reading during a 1 GiB read does not grow the server", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-nbd-stall-"))
    const file = path.join(dir, "sparse.img")
    fs.writeFileSync(file, "")
    fs.truncateSync(file, GiB)
    const backend = await openFileBackendPromise(file, { readOnly: true })
    const srv = await startServer([{ name: "big", backend }])
    const socket = net.connect({ port: srv.port, host: "127.0.0.1" })
    try {
      await new Promise<void>((r) => socket.once("connect", () => r()))
      // Handshake without reading its replies either: they are tiny and end up buffered.
      socket.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), option(Opt.GO, infoData("big"))]))
      socket.pause()
      global.gc?.()
      const before = process.memoryUsage().rss
      socket.write(Buffer.concat(Array.from({ length: 32 }, (_, i) => request(Cmd.READ, i, i * 32 * MiB, 32 * MiB))))
      // Wait until the server has filled its budget and stopped admitting.
      await until(async () => {
        const [s] = await Effect.runPromise(srv.server.stats)
        return s !== undefined && s.inTransmission && s.blocked && s.budgetUsed > 0
      }, "the server to stall on the unread replies")
      const [stalled] = await Effect.runPromise(srv.server.stats)
      expect(stalled?.budgetUsed).toBeLessThanOrEqual(32 * MiB)
      const growth = process.memoryUsage().rss - before
      expect(growth).toBeLessThan(64 * MiB)

      // The client goes away without reading: everything it held is released.
      socket.destroy()
      await until(async () => (await Effect.runPromise(srv.server.connections)) === 0, "the connection to close")
    } finally {
      socket.destroy()
      await srv.stop()
      await backend.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
