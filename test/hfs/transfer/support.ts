import { Effect, Exit, Redacted } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { type ReceiveOptions, receiveHome } from "../../../src/actors/hfs/transfer/receive.js"
import { transferServer, type TransferServerOptions } from "../../../src/actors/hfs/transfer/server.js"

export const KiB = 1024
export const MiB = 1024 * KiB
export const secret = Redacted.make("hfs-transfer-test-secret")

/** A fresh directory with `a/` (the source HFS) and `b/` (the destination HFS). */
export const workDir = (label: string) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `prolo-hfs-transfer-${label}-`))
  fs.mkdirSync(path.join(root, "a"))
  fs.mkdirSync(path.join(root, "b"))
  return { root, a: path.join(root, "a"), b: path.join(root, "b"), remove: () => fs.rmSync(root, { recursive: true, force: true }) }
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export const run = (cmd: string, args: ReadonlyArray<string>): Promise<{ code: number; out: string }> =>
  new Promise((resolve) =>
    execFile(cmd, [...args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, out: `${stdout}${stderr}` })
    )
  )

export const sameBytes = async (a: string, b: string): Promise<boolean> => (await run("cmp", [a, b])).code === 0

/** A source serving `file` for every request, bound to loopback for the test's scope. */
export const source = (file: string, extra: Partial<TransferServerOptions> = {}) =>
  transferServer({ host: "127.0.0.1", port: 0, secret, resolve: () => Effect.succeed(file), ...extra })

export const receive = (port: number, dir: string, login: string, generation: number, extra: Partial<ReceiveOptions> = {}) =>
  receiveHome({
    host: "127.0.0.1",
    port,
    secret,
    login,
    generation,
    dir,
    finalPath: path.join(dir, `${login}.nbd`),
    ...extra
  })

export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") return exit.cause.error
  throw new Error(`expected a typed failure, got ${Exit.isSuccess(exit) ? "success" : String(exit.cause)}`)
}

/**
 * A TCP relay to `host:port` (listening on `host` too) that flips one byte of the source→destination stream at `at`: a
 * link that damages data in flight. Closed with the scope.
 */
export const corruptingRelay = (port: number, at: number, host = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.async<{ port: number; server: net.Server; sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((down) => {
        const up = net.createConnection({ host, port })
        sockets.add(down).add(up)
        let seen = 0
        up.on("data", (chunk: Buffer) => {
          if (at >= seen && at < seen + chunk.length) {
            chunk = Buffer.from(chunk)
            chunk[at - seen] = chunk[at - seen]! ^ 0x40
          }
          seen += chunk.length
          if (!down.write(chunk)) up.pause()
        })
        down.on("drain", () => up.resume())
        down.on("data", (chunk: Buffer) => up.write(chunk))
        for (const s of [up, down]) {
          s.on("error", () => {})
          s.on("close", () => {
            up.destroy()
            down.destroy()
          })
        }
      })
      server.listen(0, host, () => resume(Effect.succeed({ port: (server.address() as net.AddressInfo).port, server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  )

export const incomingEntries = (dir: string): Array<string> => {
  try {
    return fs.readdirSync(path.join(dir, ".incoming"))
  } catch {
    return []
  }
}
