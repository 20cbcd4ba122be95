// What `prolo nbd serve` tells clients about its exports, with the real clients (issue 16
// items 14, 15): no server path in NBD_OPT_LIST or NBD_INFO_DESCRIPTION, NBD_INFO_NAME is
// the name the client asked for, and nbd://HOST:PORT without a name gets the default
// export when one is configured (--export =FILE, --default NAME), a clear refusal otherwise.
// nbdfuse on nbd://HOST:PORT is in nbd-mount.test.ts (it needs root and /dev/fuse).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { Opt, Rep } from "../../src/nbd/protocol.js"
import { connect, option, readOptionReplies } from "../nbd/harness.js"
import { killAll } from "./node-process.js"
import { nbdsh, runTool, startNbdServe } from "./nbd-serve.js"

const MiB = 1024 * 1024
let dir = ""
const image = (name: string, size: number) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, "")
  fs.truncateSync(file, size)
  return file
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-nbd-names-"))
})
afterEach(killAll)
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

// libnbd's view of one export: the name the server answered and its description, if any.
const nameAndDescription = (port: number, name: string) =>
  nbdsh(
    [
      "h.set_full_info(True)",
      `h.set_export_name(${JSON.stringify(name)})`,
      `h.connect_tcp("127.0.0.1", "${port}")`,
      "print('name=' + repr(h.get_canonical_export_name()))",
      "try:\n    print('description=' + repr(h.get_export_description()))\nexcept nbd.Error:\n    print('description=None')",
      "h.shutdown()"
    ].join("\n")
  )

describe("prolo nbd serve: export names and descriptions", () => {
  it("lists and describes exports without their server paths, and answers the name the client used", async () => {
    const scratch = image("scratch.img", 4 * MiB)
    const skel = image("skel.img", MiB)
    const server = await startNbdServe(["--export", `scratch=${scratch}`, "--export", `skel=${skel},ro`])
    const uri = `nbd://127.0.0.1:${server.port}`

    const list = await runTool("nbdinfo", ["--list", "--json", uri])
    expect(list.code, list.stderr).toBe(0)
    const listed = JSON.parse(list.stdout) as { exports: Array<{ "export-name": string; description?: string }> }
    expect(listed.exports.map((e) => [e["export-name"], e.description])).toEqual([
      ["scratch", undefined],
      ["skel", undefined]
    ])
    expect(list.stdout + list.stderr).not.toContain(dir)

    // What `nbd-client -l` reads: the raw NBD_REP_SERVER replies.
    const c = await connect(server.port)
    await c.read(18)
    c.write(Buffer.from([0, 0, 0, 3]))
    c.write(option(Opt.LIST))
    const replies = await readOptionReplies(c)
    c.close()
    expect(replies.map((r) => [r.type, r.data.subarray(4).toString()])).toEqual([
      [Rep.SERVER, "scratch"],
      [Rep.SERVER, "skel"],
      [Rep.ACK, ""]
    ])

    const plain = await nameAndDescription(server.port, "scratch")
    expect(plain.stdout, plain.stderr).toBe("name='scratch'\ndescription=None\n")
    const pinned = await nameAndDescription(server.port, "scratch@0")
    expect(pinned.stdout, pinned.stderr).toBe("name='scratch@0'\ndescription=None\n")
    expect(server.output()).not.toMatch(/error/i)
  })

  it("refuses nbd://HOST:PORT with what to do when no default export is configured", async () => {
    const server = await startNbdServe(["--export", "scratch=mem:1M"])
    const uri = `nbd://127.0.0.1:${server.port}`
    const advice = /this server has no default export: ask for one by name \(nbd:\/\/HOST:PORT\/NAME; nbdinfo --list .*--default NAME or --export =FILE\)/
    // libnbd shows the server's message in its debug output only; qemu shows it always.
    const info = await runTool("nbdinfo", ["--size", uri], { env: { LIBNBD_DEBUG: "1" } })
    expect(info.code).not.toBe(0)
    expect(info.stderr).toMatch(new RegExp(`server error message: ${advice.source}`))
    const qemu = await runTool("qemu-img", ["info", uri])
    expect(qemu.code).not.toBe(0)
    expect(qemu.stderr).toMatch(new RegExp(`server reported: ${advice.source}`))
  })

  it("serves --export =FILE to nbd://HOST:PORT, listed as \"default\"", async () => {
    const home = image("home.img", 3 * MiB)
    const server = await startNbdServe(["--export", `=${home}`, "--export", "other=mem:1M"])
    const uri = `nbd://127.0.0.1:${server.port}`
    const size = await runTool("nbdinfo", ["--size", uri])
    expect([size.code, size.stdout.trim()], size.stderr).toEqual([0, String(3 * MiB)])
    // Written through the unnamed URI, read back by name: one export.
    const rw = await nbdsh(
      [
        `h.connect_uri("${uri}")`,
        "h.pwrite(b'written via the default', 4096)",
        "h.shutdown()",
        "g = nbd.NBD()",
        `g.connect_uri("${uri}/default")`,
        "print(g.pread(23, 4096).decode())",
        "g.shutdown()"
      ].join("\n")
    )
    expect(rw.stdout, rw.stderr).toBe("written via the default\n")
    expect(fs.readFileSync(home).subarray(4096, 4096 + 23).toString()).toBe("written via the default")
    const list = await runTool("nbdinfo", ["--list", "--json", uri])
    expect((JSON.parse(list.stdout) as { exports: Array<{ "export-name": string }> }).exports.map((e) => e["export-name"])).toEqual(["default", "other"])
  })

  it("serves the export named by --default to nbd://HOST:PORT", async () => {
    const server = await startNbdServe(["--export", "a=mem:1M", "--export", "b=mem:2M", "--default", "b"])
    const size = await runTool("nbdinfo", ["--size", `nbd://127.0.0.1:${server.port}`])
    expect([size.code, size.stdout.trim()], size.stderr).toEqual([0, String(2 * MiB)])
    const named = await nameAndDescription(server.port, "")
    expect(named.stdout, named.stderr).toBe("name=''\ndescription=None\n")
  })
})
