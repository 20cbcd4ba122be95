import { Effect } from "effect"
import { createRequire } from "node:module"
import * as os from "node:os"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { type Control, type Reply, type Request, Status } from "./thread-protocol.js"

// The heavy per-window work of both sides of a transfer, off the event loop: a small fixed
// pool of worker threads shared by every transfer of the process. A source thread reads a
// window's runs from the image into a slot and computes its W; a destination thread computes
// W of a received window, compares it with the frame's and, only when they match, writes the
// runs into the partial image. Slots are SharedArrayBuffers posted to every thread once, when
// they are made (thread-protocol.ts): nothing is copied or cloned per window. File
// descriptors are the process's, so a thread reads and writes the very files the loop opened.
//
// A thread that dies fails its requests (the transfer fails and is retried, resuming) and is
// replaced on the next request.

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

/** A `failed` reply as an error (what the thread threw: its errno name and message). */
export const threadFailure = (code: string | undefined, message: string | undefined): Error =>
  Object.assign(new Error(message ?? "hash thread failed"), { code: code ?? "EIO" })

/** How a request ended: a Status, and for `failed` the errno name and message. */
export type Done = (status: number, code?: string, message?: string) => void

interface Thread {
  readonly worker: Worker
  readonly waiting: Map<number, Done>
  dead: boolean
}

const threads: Array<Thread | undefined> = []
// Every slot the threads know, by id (posted to a thread when it starts).
const registered = new Map<number, SharedArrayBuffer>()
let nextSlot = 0

const spawnThread = (): Thread => {
  const worker = newWorker()
  const thread: Thread = { worker, waiting: new Map(), dead: false }
  // Idle threads must not keep the process alive.
  worker.unref()
  for (const [id, buffer] of registered) worker.postMessage({ register: id, buffer } satisfies Control)
  worker.on("message", (reply: Reply) => {
    const done = thread.waiting.get(reply[0])
    if (done === undefined) return
    thread.waiting.delete(reply[0])
    if (thread.waiting.size === 0) worker.unref()
    done(reply[1], reply[2], reply[3])
  })
  const fail = (e: Error) => {
    thread.dead = true
    const waiting = [...thread.waiting.values()]
    thread.waiting.clear()
    for (const done of waiting) done(Status.failed, "EIO", `hash thread: ${e.message}`)
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
 * Ends every hash thread now, as a crash of each would: the requests they hold fail (their
 * transfers fail, the destination's journal keeps what was verified), and the next request
 * starts fresh threads. For the tests of that path; a node never needs it (idle threads do not
 * keep it alive).
 */
export const stopHashThreads = async (): Promise<void> => {
  const live = threads.filter((t): t is Thread => t !== undefined && !t.dead)
  await Promise.all(live.map((t) => t.worker.terminate()))
}

/**
 * Starts the hash threads now if they are not running, so that a transfer does not wait for
 * them at its first window (a thread takes ~50 ms to start from the bundle, up to a second
 * from the sources under tsx). Called when a transfer listener opens and when a receive starts.
 */
export const warmHashPool = (): void => {
  pick()
}

/** Sends `request` to the least busy thread; `done` is called once, on the loop. */
export const submit = (request: Request, done: Done): void => {
  const thread = pick()
  thread.waiting.set(request[1], done)
  if (thread.waiting.size === 1) thread.worker.ref()
  thread.worker.postMessage(request)
}

/** A window's request on the threads: its reply, once it came (`status` -1 until then). */
export interface Pending {
  status: number
  code?: string
  message?: string
}

/**
 * One transfer's requests: `send` records each reply into its window and calls `then`, on the
 * loop; `settled` waits until none is in flight (the threads read the slots and write the image:
 * both stay open until then).
 */
export const makeRequests = () => {
  let inFlight = 0
  let settle: (() => void) | undefined
  return {
    send: (request: Request, pending: Pending, then: () => void): void => {
      inFlight++
      submit(request, (status, code, message) => {
        inFlight--
        if (inFlight === 0) settle?.()
        pending.status = status
        if (code !== undefined) pending.code = code
        if (message !== undefined) pending.message = message
        then()
      })
    },
    settled: Effect.promise(() => (inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => (settle = r))))
  }
}

export interface Slots {
  /** The slots' ids, as requests name them. */
  readonly ids: ReadonlyArray<number>
  readonly buffers: ReadonlyArray<Buffer>
  /**
   * Gives them back (no request on them may be in flight); `reuse` false when something
   * else may still read them (a socket write that did not complete): then they are dropped.
   */
  readonly release: (reuse?: boolean) => void
}

// Slots given back are kept (still posted to the threads) for the next transfer, up to this
// many bytes per process: a fresh SharedArrayBuffer costs a page fault per 4 KiB at first use
// (~10 ms a transfer here). Beyond, they are forgotten by the threads and collected.
const IDLE_BYTES = 64 * 1024 * 1024
const idle: Array<{ readonly id: number; readonly buffer: Buffer }> = []

const forget = (id: number) => {
  registered.delete(id)
  for (const t of threads) if (t !== undefined && !t.dead) t.worker.postMessage({ unregister: id } satisfies Control)
}

/** `count` slots of `bytes` bytes each, shared with the threads. */
export const leaseSlots = (count: number, bytes: number): Slots => {
  const taken: Array<{ readonly id: number; readonly buffer: Buffer }> = []
  for (let i = 0; i < count; i++) {
    const k = idle.findIndex((s) => s.buffer.length === bytes)
    if (k >= 0) {
      taken.push(idle.splice(k, 1)[0]!)
      continue
    }
    const id = nextSlot++
    const buffer = new SharedArrayBuffer(bytes)
    registered.set(id, buffer)
    for (const t of threads) if (t !== undefined && !t.dead) t.worker.postMessage({ register: id, buffer } satisfies Control)
    taken.push({ id, buffer: Buffer.from(buffer) })
  }
  let released = false
  return {
    ids: taken.map((s) => s.id),
    buffers: taken.map((s) => s.buffer),
    release: (reuse = true) => {
      if (released) return
      released = true
      for (const s of taken) {
        if (!reuse) {
          forget(s.id)
          continue
        }
        idle.push(s)
        let idleBytes = idle.reduce((n, x) => n + x.buffer.length, 0)
        while (idleBytes > IDLE_BYTES) {
          const old = idle.shift()!
          idleBytes -= old.buffer.length
          forget(old.id)
        }
      }
    }
  }
}
