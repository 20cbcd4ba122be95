import { parentPort } from "node:worker_threads"
import { windowHash } from "./digest.js"
import type { HashRequest, HashReply } from "./hash-pool.js"

// A hash thread of hash-pool.ts: W of the windows it is handed, over the shared buffer the
// window sits in (no copy). Runs as the bundle's `hfs-hash-worker.mjs` or, from the sources,
// under tsx.

parentPort?.on("message", (req: HashRequest) => {
  const payload = Buffer.from(req.buffer, req.byteOffset, req.length)
  let reply: HashReply
  try {
    const hash = windowHash(req.runs, payload)
    reply = { id: req.id, hash: new Uint8Array(hash.buffer, hash.byteOffset, hash.length) }
  } catch (e) {
    reply = { id: req.id, error: e instanceof Error ? e.message : String(e) }
  }
  parentPort!.postMessage(reply)
})
