import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { checkout, killAll } from "../e2e/node-process.js"
import { TOOLS_PATH } from "../e2e/nbd-serve.js"
import { makeNetPair, sh, spawnIn, type NetPair } from "../support/netns.js"
import { skipUnlessRoot } from "../support/root.js"

// A client machine that dies (here: its link taken down in its own namespace, so no FIN nor
// RST ever reaches the server) must not hold its NBD connection, hence its home's grant,
// forever: `prolo nbd serve --dead-peer 1,1,2` (the HFS listener's `nbd_keepalive`) arms
// keepalive probes and TCP_USER_TIMEOUT, and the server cuts it within 1 + 1 × 2 s.

const SERVER = "10.11.128.1"
const CLIENT = "10.11.128.2"

let pair: NetPair | undefined
afterEach(async () => {
  await killAll()
  await pair?.remove()
  pair = undefined
})

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The server namespace's established NBD connections, with their timers (ss -o). */
const established = async (p: NetPair): Promise<Array<string>> =>
  (await sh([...p.exec(p.server), "ss", "-Htno", "state", "established", "( sport = :10809 )"])).split("\n").filter((l) => l.trim() !== "")

describe.skipIf(skipUnlessRoot("nbd dead peer: network namespaces"))("nbd dead peer", () => {
  it("a client whose link went down is cut within idle + interval × count seconds", async () => {
    pair = await makeNetPair([`${SERVER}/24`], [`${CLIENT}/24`])
    const p = pair
    const server = spawnIn(p, p.server, [process.execPath, path.join(checkout, "bin", "prolo.js"), "nbd", "serve", "--listen", `${SERVER}:10809`, "--export", "=mem:1M", "--dead-peer", "1,1,2"])
    for (let i = 0; !/nbd serving on/.test(server.stdout + server.stderr); i++) {
      if (i > 600) throw new Error(`nbd serve did not start: ${server.stdout}${server.stderr}`)
      await pause(50)
    }
    // a client attached (in transmission), holding the connection; once the handshake's
    // bytes are acknowledged its only timer is the keepalive the server armed
    const client = spawnIn(p, p.client, ["env", `PATH=${TOOLS_PATH}`, "nbdsh", "-u", `nbd://${SERVER}`, "-c", "h.pread(512, 0); import time; time.sleep(120)"])
    let conns: Array<string> = []
    for (let i = 0; !conns.some((c) => /timer:\(keepalive/.test(c)); i++) {
      if (i > 400) throw new Error(`no connection with a keepalive timer: ${conns.join("\n")} ${client.stderr}`)
      await pause(25)
      conns = await established(p)
    }
    expect(conns).toHaveLength(1)
    // the client machine "dies": its link goes down, nothing more reaches the server
    await sh(["ip", "-n", p.client, "link", "set", p.clientIf, "down"])
    const t0 = performance.now()
    for (let i = 0; conns.length > 0; i++) {
      if (i > 200) throw new Error(`the dead client's connection is still there after ${((performance.now() - t0) / 1000).toFixed(1)} s: ${conns.join("\n")}`)
      await pause(50)
      conns = await established(p)
    }
    const cutAfter = (performance.now() - t0) / 1000
    console.log(`nbd dead peer: connection cut ${cutAfter.toFixed(1)} s after the client's link went down (bound 3 s)`)
    expect(cutAfter).toBeLessThan(3 + 1.5)
  }, 60_000)
})
