import { createRequire } from "node:module"
import * as os from "node:os"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { type Run, windowHash } from "./digest.js"

// W (digest.ts) off the event loop: a small fixed pool of worker threads shared by every
// transfer of the process, fed windows that live in SharedArrayBuffer-backed buffers, so
// nothing is copied to or from a thread. Both sides of a transfer hash every byte once; on
// the event loop that serialised hashing with reading, decoding and writing (the bench's
// destination was 44 % idle waiting for a source busy hashing). With the pool, the loop
// reads/writes window k while a thread hashes window k+1.
//
// A buffer not backed by shared memory is hashed inline (tests, the fuzz decoder). A thread
// that dies fails its requests (the transfer fails and is retried, resuming) and is replaced
// on the next request.

export interface HashRequest {
  readonly id: number
  readonly buffer: SharedArrayBuffer
  readonly byteOffset: number
  readonly length: number
  readonly runs: ReadonlyArray<Run>
}
export type HashReply = { readonly id: number; readonly hash: Uint8Array } | { readonly id: number; readonly error: string }

/** A buffer of `size` bytes the hash threads can read without a copy. */
export const sharedBuffer = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size))

// Two threads: the boxes have 2 cores, and each side of a transfer keeps at most a few
// windows in flight; more threads only compete with the event loop.
const THREADS = Math.max(1, Math.min(2, os.availableParallelism()))

// tsx's ESM API (its CommonJS one registers hooks that cannot find their files); resolved
// here, since a thread's eval code resolves from the working directory.
const tsxApi = (): string => {
  try {
    const r = import.meta.resolve("tsx/esm/api")
    if (r.endsWith(".mjs")) return r
  } catch {
    // not available (vitest's module runner): below
  }
  return pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm/api").replace(/\.cjs$/, ".mjs")).href
}

// In the bundle the worker is dist/hfs-hash-worker.mjs, beside the chunk holding this module.
// From the sources (tsx, vitest) it is the .ts file, which a thread can load only once tsx's
// hooks are registered in it (node 20 does not pass `--import` on to threads).
const newWorker = (): Worker =>
  import.meta.url.endsWith(".ts")
    ? new Worker(
        `import(${JSON.stringify(tsxApi())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./hash-worker.ts", import.meta.url).href)}) })`,
        { eval: true }
      )
    : new Worker(new URL("./hfs-hash-worker.mjs", import.meta.url))

interface Thread {
  readonly worker: Worker
  readonly waiting: Map<number, { resolve: (h: Buffer) => void; reject: (e: Error) => void }>
  dead: boolean
}

const threads: Array<Thread | undefined> = []
let nextId = 0

const spawnThread = (): Thread => {
  const worker = newWorker()
  const thread: Thread = { worker, waiting: new Map(), dead: false }
  // Idle threads must not keep the process alive.
  worker.unref()
  worker.on("message", (reply: HashReply) => {
    const w = thread.waiting.get(reply.id)
    if (w === undefined) return
    thread.waiting.delete(reply.id)
    if (thread.waiting.size === 0) worker.unref()
    if ("hash" in reply) w.resolve(Buffer.from(reply.hash.buffer, reply.hash.byteOffset, reply.hash.length))
    else w.reject(new Error(`hash thread: ${reply.error}`))
  })
  const fail = (e: Error) => {
    thread.dead = true
    for (const w of thread.waiting.values()) w.reject(e)
    thread.waiting.clear()
  }
  worker.on("error", fail)
  worker.on("exit", (code) => fail(new Error(`hash thread exited (${code})`)))
  return thread
}

const pick = (): Thread => {
  let best: Thread | undefined
  for (let i = 0; i < THREADS; i++) {
    let t = threads[i]
    if (t === undefined || t.dead) threads[i] = t = spawnThread()
    if (best === undefined || t.waiting.size < best.waiting.size) best = t
  }
  return best!
}

/**
 * Starts the hash threads now if they are not running, so that a transfer does not wait for
 * them at its first window (a thread takes ~50 ms to start from the bundle, up to a second
 * from the sources under tsx). Called when a transfer listener opens and when a receive starts.
 */
export const warmHashPool = (): void => {
  pick()
}

/** W of a window whose payload is `payload` (see digest.ts `windowHash`), on a hash thread when it can. */
export const windowHashAsync = (runs: ReadonlyArray<Run>, payload: Buffer): Promise<Buffer> => {
  if (!(payload.buffer instanceof SharedArrayBuffer)) {
    try {
      return Promise.resolve(windowHash(runs, payload))
    } catch (e) {
      return Promise.reject(e)
    }
  }
  const thread = pick()
  const id = nextId++
  return new Promise<Buffer>((resolve, reject) => {
    thread.waiting.set(id, { resolve, reject })
    if (thread.waiting.size === 1) thread.worker.ref()
    const req: HashRequest = { id, buffer: payload.buffer as SharedArrayBuffer, byteOffset: payload.byteOffset, length: payload.length, runs }
    thread.worker.postMessage(req)
  })
}
