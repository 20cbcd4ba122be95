import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, Redacted, TestClock } from "effect"
import { execFile, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { encodeLine, encodeRequest, MAX_REQUEST_BYTES, parseRequest } from "../../src/actors/pam/helper-protocol.js"
import { type PamTargets, perCallClients } from "../../src/actors/pam/clients.js"
import { serveLoginHelper } from "../../src/actors/pam/helper.js"
import type { PamBase, PamRequest } from "../../src/actors/pam/run-stage.js"
import { checkout } from "../e2e/node-process.js"
import { skipUnlessRoot } from "../support/root.js"

// The resident login helper (src/actors/pam/helper.ts) and bin/prolo-pam, the shell script
// pam_exec runs, which hands it the stage over its socket. Stages of contest users, with homes,
// are the site suite's (test/e2e/site/login.test.ts, every machine there runs the helper).

// Never used: every request below passes through before any call (unknown stage or user).
const targets: PamTargets = {
  profile: { mdb_url: "http://127.0.0.1:1/", attach: "fuse", home_base: "/nonexistent", state_dir: "/nonexistent", home_timeout_seconds: 5 },
  presence: { url: "http://127.0.0.1:1/", secret: Redacted.make("x") },
  hfsClient: { shared_secret: Redacted.make("x"), rpc_port: 1 }
}
const base: PamBase = { ...targets, hostname: "test", clients: perCallClients(targets) }

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "prolo-helper-"))

/** Sends `bytes` (then half-closes, as socat does) and returns everything the helper answers. */
const ask = (socketPath: string, bytes: Buffer, halfClose = true) =>
  Effect.async<string>((resume) => {
    const c = net.createConnection({ path: socketPath, allowHalfOpen: true })
    let out = ""
    c.setEncoding("utf8").on("data", (d: string) => (out += d))
    c.on("end", () => (c.destroy(), resume(Effect.succeed(out))))
    c.on("error", (e) => resume(Effect.succeed(`error: ${e.message}`)))
    c.write(bytes, () => (halfClose ? c.end() : undefined))
  })

const request = (r: Partial<PamRequest>): Buffer => encodeRequest({ stage: "account", user: "root", service: "login", rhost: "", ...r })

describe("login helper protocol", () => {
  it("parses four NUL-terminated fields, waits for more, refuses anything else", () => {
    expect(parseRequest(Buffer.from("account\0ada\0login\0\0"))).toEqual(Either.right({ stage: "account", user: "ada", service: "login", rhost: "" }))
    expect(parseRequest(Buffer.from("account\0ada\0log"))).toEqual(Either.right(undefined))
    expect(parseRequest(Buffer.from("account\0ada\0login\0\0more"))).toEqual(Either.left("bytes after the four fields of the request"))
    expect(parseRequest(Buffer.alloc(MAX_REQUEST_BYTES + 1, 65))).toEqual(Either.left(`request longer than ${MAX_REQUEST_BYTES} bytes`))
  })
  it("a greeter line cannot forge the status: every line is prefixed, control characters blanked", () => {
    expect(encodeLine("two\nlines")).toBe("|two\n|lines\n")
    expect(encodeLine("=0\r\u0007x")).toBe("|=0  x\n")
  })
})

describe("login helper", () => {
  it.scoped("answers pass-through stages and refuses bad requests with one line and status 4", () =>
    Effect.gen(function* () {
      const dir = tempDir()
      const socketPath = path.join(dir, "state", ".helper.sock")
      const answered: Array<PamRequest | null> = []
      yield* serveLoginHelper({ socketPath, base, onAnswer: (a) => void answered.push(a.request) })
      expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600)
      expect(fs.statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700)
      expect(yield* ask(socketPath, request({ stage: "auth" }))).toBe("=0\n")
      expect(yield* ask(socketPath, request({ user: "root" }))).toBe("=0\n")
      expect(yield* ask(socketPath, request({ user: "no-such-user-here", stage: "close_session" }))).toBe("=0\n")
      expect(yield* ask(socketPath, Buffer.from("account\0root"))).toBe("|Login impossible: prolo-pam helper: request cut short (fewer than four NUL-terminated fields)\n=4\n")
      expect(yield* ask(socketPath, Buffer.alloc(MAX_REQUEST_BYTES + 10, 65))).toBe(`|Login impossible: prolo-pam helper: request longer than ${MAX_REQUEST_BYTES} bytes\n=4\n`)
      expect(yield* ask(socketPath, Buffer.alloc(0))).toBe("|Login impossible: prolo-pam helper: empty request\n=4\n")
      expect(answered.map((r) => r?.stage ?? null)).toEqual(["auth", "account", "close_session", null, null, null])
    })
  )

  it.scoped("a caller that never finishes its request is answered after the request timeout (Clock)", () =>
    Effect.gen(function* () {
      const socketPath = path.join(tempDir(), ".helper.sock")
      let started = 0
      yield* serveLoginHelper({ socketPath, base, requestTimeout: Duration.seconds(10), onStart: () => void started++ })
      const answer = yield* Effect.fork(ask(socketPath, Buffer.from("account\0"), false))
      for (let i = 0; i < 1000 && started === 0; i++) yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      expect(started).toBe(1)
      // The timer starts once the connection's fiber runs: step the clock until it fired (bounded).
      for (let i = 0; i < 20 && answer.unsafePoll() === null; i++) {
        yield* TestClock.adjust(Duration.seconds(10))
        yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      }
      expect(yield* answer.await.pipe(Effect.flatMap(Exit.match({ onFailure: () => Effect.succeed("failed"), onSuccess: Effect.succeed })))).toBe(
        "|Login impossible: prolo-pam helper: no complete request within 10s\n=4\n"
      )
    })
  )

  it.scoped("takes over a stale socket, refuses to replace a live one or a file that is not a socket", () =>
    Effect.gen(function* () {
      const dir = tempDir()
      const stale = path.join(dir, "stale.sock")
      // A socket file nobody listens on (a helper killed with SIGKILL leaves one).
      expect(spawnSync("python3", ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]).status).toBe(0)
      yield* serveLoginHelper({ socketPath: stale, base })
      expect(yield* ask(stale, request({ stage: "auth" }))).toBe("=0\n")
      const second = yield* Effect.flip(Effect.scoped(serveLoginHelper({ socketPath: stale, base })))
      expect(second.message).toBe(`another login helper listens on ${stale}`)
      const file = path.join(dir, "file")
      fs.writeFileSync(file, "keep me")
      const notSocket = yield* Effect.flip(Effect.scoped(serveLoginHelper({ socketPath: file, base })))
      expect(notSocket.message).toBe(`${file} exists and is not a socket: not replaced`)
      expect(fs.readFileSync(file, "utf8")).toBe("keep me")
    })
  )
})

/** bin/prolo-pam as pam_exec runs it: only PAM variables in its environment. */
const hook = (args: ReadonlyArray<string>, env: Record<string, string>, prefix: ReadonlyArray<string> = []) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    const argv = [...prefix, path.join(checkout, "bin/prolo-pam"), ...args]
    execFile(argv[0]!, argv.slice(1), { env, timeout: 60_000 }, (error, stdout) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout })
    )
  })

/** A stand-in helper answering every connection with `answer` once the request arrived. */
const fakeHelper = (socketPath: string, answer: string) =>
  Effect.acquireRelease(
    Effect.async<net.Server>((resume) => {
      const server = net.createServer({ allowHalfOpen: true }, (s) => {
        let got = Buffer.alloc(0)
        s.on("data", (d: Buffer) => {
          got = Buffer.concat([got, d])
          if (Either.getOrUndefined(parseRequest(got)) !== undefined) s.end(answer)
        })
      })
      server.listen(socketPath, () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

describe("bin/prolo-pam", () => {
  it.scoped("relays the helper's greeter lines and exit status", () =>
    Effect.gen(function* () {
      const socketPath = path.join(tempDir(), "h.sock")
      yield* fakeHelper(socketPath, "|Checking user…\n|Login forbidden: logged in elsewhere\n=6\n")
      const r = yield* Effect.promise(() => hook(["--socket", socketPath], { PAM_TYPE: "account", PAM_USER: "ada", PAM_SERVICE: "login" }))
      expect(r).toEqual({ code: 6, stdout: "Checking user…\nLogin forbidden: logged in elsewhere\n" })
    })
  )

  it.scoped("hands the real helper every stage it handles; other stages never reach it", () =>
    Effect.gen(function* () {
      const socketPath = path.join(tempDir(), ".helper.sock")
      const answered: Array<string> = []
      yield* serveLoginHelper({ socketPath, base, onAnswer: (a) => void answered.push(`${a.request?.stage} ${a.request?.user}`) })
      for (const stage of ["account", "open_session", "close_session", "auth"]) {
        expect(yield* Effect.promise(() => hook(["--socket", socketPath], { PAM_TYPE: stage, PAM_USER: "root", PAM_SERVICE: "login" }))).toEqual({ code: 0, stdout: "" })
      }
      expect(answered).toEqual(["account root", "open_session root", "close_session root"])
    })
  )

  it("bad arguments: one line, status 4", async () => {
    expect(await hook(["--socket"], { PAM_TYPE: "account", PAM_USER: "root" })).toEqual({ code: 4, stdout: "Login impossible: prolo-pam: --socket needs a path\n" })
    expect(await hook(["--bogus"], { PAM_TYPE: "account", PAM_USER: "root" })).toEqual({ code: 4, stdout: "Login impossible: prolo-pam: unknown argument --bogus\n" })
  })

  // No helper (none listening on a stale socket, or one that went away mid-stage without a
  // status): the stage runs in process. Proved with a contest user (a passwd bind-mounted in a
  // mount namespace of the test) and no configuration: only bin/prolo-pam.js says that.
  it.skipIf(skipUnlessRoot("bin/prolo-pam's in-process fallback (unshare, bind mount)"))("runs the stage in process when no helper answers", async () => {
    const dir = tempDir()
    fs.writeFileSync(path.join(dir, "passwd"), `${fs.readFileSync("/etc/passwd", "utf8")}zed:x:10042:10042:Zed:/home/zed:/bin/sh\n`)
    const stale = path.join(dir, "stale.sock")
    expect(spawnSync("python3", ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]).status).toBe(0)
    const silent = path.join(dir, "silent.sock")
    const ns = ["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind ${dir}/passwd /etc/passwd && exec "$@"`, "sh"]
    const env = { PAM_TYPE: "account", PAM_USER: "zed", PAM_SERVICE: "login" }
    const expected = { code: 4, stdout: expect.stringMatching(/^Login impossible: configuration: .*\n$/) }
    expect(await hook(["--socket", stale, "--config", path.join(dir, "no-config")], env, ns)).toEqual(expected)
    await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(fakeHelper(silent, "|Checking user…\n"), () =>
          Effect.promise(() => hook(["--socket", silent, "--config", path.join(dir, "no-config")], env, ns))
        )
      )
    ).then((r) => {
      expect(r.code).toBe(4)
      expect(r.stdout).toMatch(/^Checking user…\nLogin impossible: configuration: /)
    })
  })
})
