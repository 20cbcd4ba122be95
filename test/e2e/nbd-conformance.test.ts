// The shared black-box conformance script (shared/tools/nbd-conformance.sh: 39 checks with
// python3-libnbd, nbdinfo, nbdcopy, qemu-io and raw sockets) against `prolo nbd serve`
// running as its own process, with every optional feature required (REQUIRE=all) and
// unknown export names refused (STRICT_EXPORTS=1): once on an in-memory export, once on a
// sparse file. Then SIGTERM must stop the server cleanly.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const tools = process.env["NBD_TOOLS"] ?? path.resolve(root, "..", "shared", "tools")
const script = path.join(tools, "nbd-conformance.sh")
// Debian's python3 has the libnbd bindings; a pyenv python3 earlier on PATH does not.
const PATH = `/usr/bin:/usr/sbin:/bin:/sbin:${process.env["PATH"] ?? ""}`
const MiB = 1024 * 1024

interface Server {
  readonly child: ChildProcess
  readonly port: number
  readonly output: () => string
  readonly exited: Promise<number | null>
}

const startServer = async (exportsArgs: ReadonlyArray<string>): Promise<Server> => {
  // Port 0: the server picks a free port and logs it (no window for another process to take it).
  const args = [path.join(root, "bin", "prolo.js"), "nbd", "serve", "--listen", "127.0.0.1:0", ...exportsArgs.flatMap((e) => ["--export", e])]
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d))
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const port = await new Promise<number>((resolve, reject) => {
    const check = setInterval(() => {
      const listening = /nbd serving on 127\.0\.0\.1:(\d+)/.exec(out)
      if (listening !== null) {
        clearInterval(check)
        resolve(Number(listening[1]))
      }
    }, 20)
    void exited.then((code) => {
      clearInterval(check)
      reject(new Error(`server exited (${code}) before listening:\n${out}`))
    })
  })
  return { child, port, output: () => out, exited }
}

const runConformance = (port: number, exportName: string, env: Record<string, string>) =>
  new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn("bash", [script, "127.0.0.1", String(port), exportName], {
      env: { ...process.env, PATH, REQUIRE: "all", STRICT_EXPORTS: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d))
    child.once("close", (code) => resolve({ code, out }))
  })

describe("prolo nbd serve against nbd-conformance.sh", () => {
  let dir = ""
  let server: Server | undefined

  beforeAll(async () => {
    if (!fs.existsSync(script)) throw new Error(`the shared conformance script ${script} is missing (set NBD_TOOLS)`)
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
    server = await startServer(["scratch=mem:256M", `file=${scratch}`, `sparse=${sparse},ro`])
  })

  afterAll(async () => {
    if (server !== undefined && server.child.exitCode === null) {
      server.child.kill("SIGKILL")
      await server.exited
    }
    if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
  })

  const expectClean = (r: { code: number | null; out: string }) => {
    const summary = /# summary: (\d+) pass, (\d+) fail, (\d+) warn, (\d+) skip/.exec(r.out)
    expect(summary, r.out).not.toBeNull()
    const [, pass, fail, , skip] = summary as RegExpExecArray
    expect({ code: r.code, pass: Number(pass), fail: Number(fail), skip: Number(skip) }, r.out).toEqual({ code: 0, pass: 39, fail: 0, skip: 0 })
    // Shown in the test log: what the script printed.
    console.log(r.out)
  }

  it("passes every check on an in-memory export", async () => {
    expectClean(await runConformance((server as Server).port, "scratch", {}))
  }, 300_000)

  it("passes every check on a sparse file export", async () => {
    expectClean(await runConformance((server as Server).port, "file", { SPARSE_EXPORT: "sparse" }))
  }, 300_000)

  it("stops cleanly on SIGTERM: connected clients are closed, the process exits 0", async () => {
    const s = server as Server
    const client = net.connect({ port: s.port, host: "127.0.0.1" })
    const clientClosed = new Promise<void>((resolve) => client.once("close", () => resolve()))
    client.on("error", () => undefined)
    client.resume()
    await new Promise<void>((resolve) => client.once("data", () => resolve()))
    s.child.kill("SIGTERM")
    expect(await s.exited, s.output()).toBe(0)
    await clientClosed
    // Ours, plus any the script's last checks left that the server has not seen close yet.
    expect(s.output()).toMatch(/nbd server stopping: [1-9][0-9]* connection\(s\) to drain/)
  }, 60_000)
})
