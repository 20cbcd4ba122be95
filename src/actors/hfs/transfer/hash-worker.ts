import * as fs from "node:fs"
import { parentPort } from "node:worker_threads"
import { HASH_BYTES, windowHash } from "./digest.js"
import { type Control, Op, type Reply, type Request, Status } from "./thread-protocol.js"
import { BODY_HASH_AT, HEADER, readRunTable, RUN_BYTES, SLOT_PAYLOAD_AT, WINDOW_HEAD } from "./window-frame.js"

// A thread of hash-pool.ts: the per-window work of a transfer, over the shared slots it was
// handed once (no copy). Runs as the bundle's `hfs-hash-worker.mjs` or, from the sources,
// under tsx. Blocking file I/O is fine here: a cold page cache or a slow disk blocks this
// thread, never the event loop.

const slots = new Map<number, Buffer>()

const readFully = (fd: number, buf: Buffer, at: number, length: number, position: number): void => {
  for (let done = 0; done < length; ) {
    const n = fs.readSync(fd, buf, at + done, length - done, position + done)
    // The file shrank under us (it must not: the caller fenced it): reads as zeroes.
    if (n === 0) {
      buf.fill(0, at + done, at + length)
      return
    }
    done += n
  }
}

const writeFully = (fd: number, buf: Buffer, at: number, length: number, position: number): void => {
  for (let done = 0; done < length; ) done += fs.writeSync(fd, buf, at + done, length - done, position + done)
}

const work = (op: number, slot: Buffer, a: number, b: number): number => {
  if (op === Op.readHash) {
    // a = fd, b = where the frame starts; its header, head and run table are there already.
    const runs = readRunTable(slot, b + HEADER + WINDOW_HEAD, slot.readUInt16BE(b + HEADER + 8))!
    let at = SLOT_PAYLOAD_AT
    for (const run of runs) {
      readFully(a, slot, at, run.length, run.offset)
      at += run.length
    }
    windowHash(runs, slot.subarray(SLOT_PAYLOAD_AT, at)).copy(slot, b + HEADER + BODY_HASH_AT)
    return Status.ok
  }
  // verifyWrite: a = body length, b = fd; the body was checked by frames.ts.
  const count = slot.readUInt16BE(8)
  const runs = readRunTable(slot, WINDOW_HEAD, count)!
  const headEnd = WINDOW_HEAD + count * RUN_BYTES
  if (!windowHash(runs, slot.subarray(headEnd, a)).equals(slot.subarray(BODY_HASH_AT, BODY_HASH_AT + HASH_BYTES))) return Status.mismatch
  let at = headEnd
  for (const run of runs) {
    writeFully(b, slot, at, run.length, run.offset)
    at += run.length
  }
  return Status.ok
}

parentPort?.on("message", (m: Request | Control) => {
  if (!Array.isArray(m)) {
    const c = m as Control
    if ("register" in c) slots.set(c.register, Buffer.from(c.buffer))
    else slots.delete(c.unregister)
    return
  }
  const [op, id, a, b] = m as Request
  let reply: Reply
  try {
    const slot = slots.get(id)
    if (slot === undefined) throw new Error(`unknown slot ${id}`)
    reply = [id, work(op, slot, a, b)]
  } catch (e) {
    const code = typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string" ? (e as { code: string }).code : "EIO"
    reply = [id, Status.failed, code, e instanceof Error ? e.message : String(e)]
  }
  parentPort!.postMessage(reply)
})
