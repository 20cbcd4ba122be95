// Our NBD conformance checks (test/e2e/nbd-checks.ts: every check of the 39-check
// black-box suite, with raw sockets, nbdsh, nbdinfo, nbdcopy and qemu-io) against
// `prolo nbd serve` running as its own process: once on an in-memory export, once on a
// sparse file (with a read-only 2 GiB sparse export for the allocation map). Every
// optional feature is required, unknown export names must be refused, and what the
// original suite only warned about fails. Then SIGTERM must stop the server cleanly.
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHECKS, type CheckContext, probe } from "./nbd-checks.js"
import { killAll } from "./node-process.js"
import { type NbdServe, startNbdServe } from "./nbd-serve.js"

const MiB = 1024 * 1024

let dir = ""
let server: NbdServe | undefined

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-nbd-conf-"))
  const scratch = path.join(dir, "scratch.img")
  const sparse = path.join(dir, "sparse.img")
  fs.writeFileSync(scratch, "")
  fs.truncateSync(scratch, 256 * MiB)
  // 2 GiB with 1 MiB of data every 100 MiB: holes for sparse_map to find.
  const fd = fs.openSync(sparse, "w")
  const data = Buffer.alloc(MiB, 0x5a)
  for (let i = 0; i < 20; i++) fs.writeSync(fd, data, 0, MiB, i * 100 * MiB)
  fs.ftruncateSync(fd, 2048 * MiB)
  fs.closeSync(fd)
  server = await startNbdServe(["--export", "scratch=mem:256M", "--export", `file=${scratch}`, "--export", `sparse=${sparse},ro`])
})

afterAll(async () => {
  await killAll()
  if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
})

const suite = (exportName: string, sparse: string | undefined) => {
  let ctx: CheckContext | undefined
  beforeAll(async () => {
    const s = server as NbdServe
    const features = await probe(s.port, exportName)
    // REQUIRE=all: a writable export advertising every optional feature.
    expect(features).toMatchObject({
      ro: false,
      flush: true,
      fua: true,
      trim: true,
      zero: true,
      fastzero: true,
      cache: true,
      multi: true,
      df: true,
      sr: true,
      bs: true
    })
    ctx = { port: s.port, name: exportName, sparse, features, dir }
  })
  for (const check of CHECKS) {
    it(`${check.name}: ${check.description}`, async () => {
      const note = await check.run(ctx as CheckContext)
      if (note) console.log(`PASS ${check.name} (${exportName}) -- ${note}`)
    }, 120_000)
  }
}

describe("prolo nbd serve conformance, in-memory export", () => suite("scratch", undefined))
describe("prolo nbd serve conformance, sparse file export", () => suite("file", "sparse"))

describe("prolo nbd serve shutdown", () => {
  it("stops cleanly on SIGTERM: connected clients are closed, the process exits 0", async () => {
    const s = server as NbdServe
    const client = net.connect({ port: s.port, host: "127.0.0.1" })
    const clientClosed = new Promise<void>((resolve) => client.once("close", () => resolve()))
    client.on("error", () => undefined)
    client.resume()
    await new Promise<void>((resolve) => client.once("data", () => resolve()))
    s.spawned.child.kill("SIGTERM")
    expect(await s.spawned.exited, s.output()).toBe(0)
    await clientClosed
    expect(s.output()).toMatch(/nbd server stopping: [1-9][0-9]* connection\(s\) to drain/)
  }, 60_000)
})
