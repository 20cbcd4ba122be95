import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import { makeImageDigest, WINDOW, windowHash } from "./digest.js"
import { TransferIoError } from "./errors.js"
import { nextData, readRuns, windowRuns } from "./extents.js"

// The whole-image digest D of a local image (digest.ts), reading only its allocated ranges:
// what a transfer of it would end with. For checks after a migration, and operators.

export const imageDigestPromise = async (file: string): Promise<string> => {
  const h = await fsp.open(file, "r")
  try {
    const { size } = await h.stat()
    const digest = makeImageDigest(size)
    const buf = Buffer.allocUnsafe(WINDOW)
    let pos = nextData(h.fd, 0, size)
    while (typeof pos === "number" && pos < size) {
      const start = pos - (pos % WINDOW)
      const runs = windowRuns(h.fd, start, size)
      if (!Array.isArray(runs)) throw runs
      const n = await readRuns(h.fd, runs, buf)
      digest.add(start, windowHash(runs, buf.subarray(0, n)))
      pos = nextData(h.fd, start + WINDOW, size)
    }
    if (typeof pos !== "number") throw pos
    return digest.digest().toString("hex")
  } finally {
    await h.close()
  }
}

export const imageDigest = (file: string): Effect.Effect<string, TransferIoError> =>
  Effect.tryPromise({
    try: () => imageDigestPromise(file),
    catch: (err) =>
      new TransferIoError({
        path: file,
        op: "digest",
        code: typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "EIO",
        message: `digest of ${file}: ${err instanceof Error ? err.message : String(err)}`
      })
  })
