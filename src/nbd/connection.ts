import type { Extent } from "./backend.js"
import type { BufferPool } from "./buffer-pool.js"
import type { AccessDecision, AttachedConnection, ExportTable } from "./exports.js"
import { greeting, handleOption, initialState, type Limits, type Negotiated, type OptionOutcome } from "./handshake.js"
import { Cmd, IHAVEOPT, KNOWN_CLIENT_FLAGS, CLIENT_FLAG_NO_ZEROES, Rep, REQUEST_MAGIC } from "./protocol.js"
import { optionReply, readU64 } from "./replies.js"
import { errnoOf, errorReply, execute, needsBuffer, precheck, type Request, successReply } from "./transmission.js"

// One client connection: a synchronous, incremental frame decoder for both phases, the
// admission of requests (bounded in-flight count and buffer bytes), and a serialised
// writer. Runs on plain socket callbacks: the hot path allocates no Effect and copies no
// payload (nextRead has the socket receive a WRITE payload straight into its pooled
// buffer; only the part that arrived in the same read as its header is copied).
//
// Memory bound per connection: `budgetBytes` of pooled data buffers (a READ holds its
// buffer until the socket's write callback fires, so a client that stops reading stalls
// admission instead of growing the socket queue) plus `maxInFlight` small reply headers,
// plus at most `maxOptionLength` during the handshake, plus while paused the rest of the
// read that paused it (one shared read, server.ts `sharedReadBytes`). Across connections
// the pool's budget (buffer-pool.ts) bounds the sum: a request that fits this
// connection's share but not the pool waits in the pool's line, with the socket paused,
// as it would for its own.

// The part of net.Socket the connection uses (a fake one drives the unit tests).
export interface Transport {
  write(data: Buffer, cb?: (err?: Error | null) => void): unknown
  cork(): void
  uncork(): void
  pause(): unknown
  resume(): unknown
  // `cb` runs once everything written, and the FIN, is handed to the kernel.
  end(cb?: () => void): unknown
  destroy(): unknown
}

export interface ConnectionLimits extends Limits {
  // Requests admitted and not yet fully answered, per connection.
  readonly maxInFlight: number
  // Pooled data-buffer bytes held by admitted requests, per connection (the pool bounds
  // all connections together).
  readonly budgetBytes: number
  // Option data above this is skipped and answered ERR_TOO_BIG...
  readonly maxOptionLength: number
  // ...and above this the client is disconnected.
  readonly maxSkippedOptionLength: number
}

export const defaultLimits: ConnectionLimits = {
  maxPayload: 32 * 1024 * 1024,
  maxInFlight: 64,
  // 8 MiB keeps a socket's worth of replies queued (nbdcopy: 32 of its 64 × 256 KiB
  // requests) at no measured cost in throughput; 32 MiB cost 16 MiB more peak RSS with
  // nbdcopy's two connections. A lone request of the maximum payload is still admitted.
  budgetBytes: 8 * 1024 * 1024,
  maxOptionLength: 64 * 1024,
  maxSkippedOptionLength: 64 * 1024 * 1024
}

export type ConnectionEvent =
  | { readonly _tag: "Attached"; readonly export: string; readonly generation: number }
  | { readonly _tag: "Dropped"; readonly reason: string }
  | { readonly _tag: "BackendError"; readonly export: string; readonly command: number; readonly errno: number; readonly error: string }

export interface ConnectionDeps {
  readonly table: ExportTable
  readonly pool: BufferPool
  readonly limits: ConnectionLimits
  readonly shuttingDown: () => boolean
  readonly onEvent: (event: ConnectionEvent) => void
  // The chunks given to onData are overwritten after it returns (a shared read buffer):
  // whatever must wait is copied.
  readonly chunksReused: boolean
  // The listener's gate, bound to this connection's peer (exports.ts `ExportAccess`).
  readonly access?: (wireName: string) => AccessDecision
}

export interface Connection {
  readonly onData: (chunk: Buffer) => void
  // Where the next socket read should land (socket-reads.ts): `shared`, or a part of this
  // connection's own buffers whose chunks onData then takes in place.
  readonly nextRead: (shared: Buffer) => Buffer
  // The peer half-closed its side.
  readonly onEnd: () => void
  // The socket is gone (after destroy, error or full close).
  readonly onClose: () => void
  // Stop reading at the next request boundary, answer what is in flight, then close.
  // Resolves when the socket is closed.
  readonly shutdown: () => Promise<void>
  readonly inTransmission: () => boolean
  readonly drop: (reason: string) => void
  readonly stats: () => ConnectionStats
}

export interface ConnectionStats {
  readonly inTransmission: boolean
  readonly inFlight: number
  readonly budgetUsed: number
  // Not reading from the socket until an in-flight request completes (in transmission),
  // or until the export's fence has resolved (in the handshake: a GO/EXPORT_NAME waits).
  readonly blocked: boolean
  // A WRITE is admitted and its payload still arriving.
  readonly receiving: boolean
  readonly stashedBytes: number
  // The next request waits for the shared pool's budget.
  readonly waitingForPool: boolean
}

const enum Mode {
  Flags,
  OptionHeader,
  OptionData,
  OptionSkip,
  RequestHeader,
  RequestPayload,
  RequestSkip,
  // Reading stopped (drain/shutdown/error); further bytes are discarded.
  Stopped
}

export const makeConnection = (transport: Transport, deps: ConnectionDeps): Connection => {
  const { limits, pool } = deps
  let mode: Mode = Mode.Flags
  let need = 4
  let have = 0
  const scratch = Buffer.allocUnsafe(28)
  let target: Buffer = scratch
  let skipLeft = 0
  let option = 0
  let optionTooBig = false
  const hs = initialState()

  let negotiated: Negotiated | undefined
  let attached: AttachedConnection | undefined
  let current: Request | undefined // request whose payload is being read or skipped
  let pending: Request | undefined // decoded, waiting for admission
  let blocked = false
  let stash: Array<Buffer> = []
  let inFlight = 0
  let budgetUsed = 0
  let backendPending = 0
  let fenced = false
  let draining = false
  let closing = false
  let closed = false
  let corked = false
  let inFeed = false
  let peerEnded = false
  // The client sent NBD_CMD_DISC: it sends nothing more and expects us to close.
  let disconnecting = false
  // The last request header was a WRITE with a payload (see nextRead).
  let afterWrite = false
  // Waiting in the pool's line for the pending request's buffer, or holding what it granted.
  let cancelPoolWait: (() => void) | undefined
  let granted: Buffer | undefined
  const headerIn = Buffer.allocUnsafe(28)
  const closeWaiters: Array<() => void> = []
  const fenceWaiters: Array<() => void> = []

  // ---- writer -------------------------------------------------------------------
  const uncork = () => {
    corked = false
    if (!closed) transport.uncork()
  }
  const write = (parts: ReadonlyArray<Buffer>, done?: () => void) => {
    if (closed || closing) {
      done?.()
      return
    }
    if (!corked) {
      corked = true
      transport.cork()
      process.nextTick(uncork)
    }
    const last = parts.length - 1
    for (let i = 0; i < last; i++) transport.write(parts[i] as Buffer)
    if (done === undefined) transport.write(parts[last] as Buffer)
    else transport.write(parts[last] as Buffer, () => done())
  }

  // ---- lifecycle ------------------------------------------------------------------
  // The pending request will never run: leave the pool's line, give back what it granted.
  const leavePool = () => {
    cancelPoolWait?.()
    cancelPoolWait = undefined
    if (granted !== undefined) {
      const buf = granted
      granted = undefined
      pool.give(buf)
    }
  }

  const drop = (reason: string) => {
    if (closed) return
    deps.onEvent({ _tag: "Dropped", reason })
    closed = true
    leavePool()
    mode = Mode.Stopped
    stash = []
    transport.destroy()
  }

  // Flush what was written, send FIN, and discard anything the client still sends so
  // that the final close is not turned into a reset that loses our last replies. After
  // DISC the server closes its side once the replies are out (the spec leaves closing
  // to the server); otherwise the client's FIN completes the close, so that requests
  // it is still sending (shutdown) find a reader and the kernel sends no reset. Closing
  // after DISC can only reset if the client broke the protocol by sending more.
  const closeGracefully = () => {
    if (closing || closed) return
    closing = true
    mode = Mode.Stopped
    stash = []
    blocked = false
    leavePool()
    if (disconnecting)
      transport.end(() => {
        if (!closed) transport.destroy()
      })
    else transport.end()
    transport.resume()
  }

  const maybeFinishDrain = () => {
    if (draining && mode === Mode.Stopped && inFlight === 0 && pending === undefined) closeGracefully()
  }

  const stopReading = () => {
    mode = Mode.Stopped
    stash = []
    maybeFinishDrain()
  }

  const settleBackend = () => {
    backendPending--
    if (backendPending === 0 && fenceWaiters.length > 0) for (const w of fenceWaiters.splice(0)) w()
  }

  // ---- requests -------------------------------------------------------------------
  const retry = () => {
    if (blocked) {
      if (inFeed) queueMicrotask(unblock)
      else unblock()
    }
  }

  const freeBuffer = (req: Request) => {
    if (req.buf !== undefined) {
      pool.give(req.buf)
      req.buf = undefined
    }
    budgetUsed -= req.held
    req.held = 0
  }

  const release = (req: Request) => {
    inFlight--
    freeBuffer(req)
    retry()
    maybeFinishDrain()
  }

  // Only a READ's data goes out with its reply: any other buffer (a WRITE payload) is
  // free once the backend is done with it, not when the reply has been sent.
  const backendDone = (req: Request, keepBuffer: boolean) => {
    settleBackend()
    if (keepBuffer || req.buf === undefined) return
    freeBuffer(req)
    retry()
  }

  const finishError = (req: Request, errno: number, message: string) => {
    write([errorReply(negotiated as Negotiated, req, errno, message)], () => release(req))
  }

  const dispatch = (req: Request) => {
    const n = negotiated as Negotiated
    if (req.errno !== 0) return finishError(req, req.errno, req.message)
    if (fenced || closed) return release(req)
    backendPending++
    let running: Promise<ReadonlyArray<Extent> | void>
    try {
      running = execute(n.entry.backend, req)
    } catch (err) {
      // A backend that throws instead of rejecting must not take the socket handler down.
      running = Promise.reject(err)
    }
    running.then(
      (result) => {
        backendDone(req, req.type === Cmd.READ)
        const parts = successReply(n, req, result)
        if (typeof parts === "string") finishError(req, 5, parts)
        else write(parts, () => release(req))
      },
      (err: unknown) => {
        backendDone(req, false)
        const errno = errnoOf(req, err)
        const error = err instanceof Error ? err.message : String(err)
        deps.onEvent({ _tag: "BackendError", export: n.entry.name, command: req.type, errno, error })
        finishError(req, errno, error)
      }
    )
  }

  const admit = (req: Request): boolean => {
    if (inFlight >= limits.maxInFlight) return false
    if (needsBuffer(req)) {
      const bytes = pool.classSize(req.length)
      // A lone request may exceed the budget (never the case with maxPayload ≤ budget).
      if (budgetUsed > 0 && budgetUsed + bytes > limits.budgetBytes) return false
      let buf = granted
      granted = undefined
      if (buf === undefined) {
        if (cancelPoolWait !== undefined) return false
        buf = pool.tryTake(req.length)
        if (buf === undefined) {
          // Granted from another connection's give: run on our own stack, not theirs.
          cancelPoolWait = pool.waitFor(req.length, (b) => {
            cancelPoolWait = undefined
            granted = b
            queueMicrotask(grantArrived)
          })
          return false
        }
      }
      budgetUsed += bytes
      req.held = bytes
      req.buf = buf
    }
    inFlight++
    return true
  }

  // Admitted: read its payload, skip it, or run it.
  const start = (req: Request) => {
    if (req.type === Cmd.WRITE && req.length > 0) {
      current = req
      if (req.errno === 0) {
        mode = Mode.RequestPayload
        target = req.buf as Buffer
        need = req.length
        have = 0
      } else {
        mode = Mode.RequestSkip
        skipLeft = req.length
      }
      return
    }
    dispatch(req)
  }

  const grantArrived = () => {
    if (closed || closing || !blocked) leavePool()
    else unblock()
  }

  const unblock = () => {
    if (!blocked || closed || closing) return
    if (pending !== undefined) {
      if (!admit(pending)) return
      const req = pending
      pending = undefined
      start(req)
    }
    blocked = false
    const replay = stash
    stash = []
    for (const chunk of replay) feed(chunk)
    if (!blocked && !closed && !closing) transport.resume()
    maybeFinishDrain()
  }

  const onRequestHeader = (b: Buffer, at: number) => {
    if (b.readUInt32BE(at) !== REQUEST_MAGIC) return drop("bad request magic")
    const req: Request = {
      flags: b.readUInt16BE(at + 4),
      type: b.readUInt16BE(at + 6),
      cookieHi: b.readUInt32BE(at + 8),
      cookieLo: b.readUInt32BE(at + 12),
      offset: readU64(b, at + 16),
      length: b.readUInt32BE(at + 24),
      buf: undefined,
      held: 0,
      errno: 0,
      message: ""
    }
    afterWrite = req.type === Cmd.WRITE && req.length > 0
    if (req.type === Cmd.DISC) {
      draining = true
      disconnecting = true
      return stopReading()
    }
    precheck(negotiated as Negotiated, limits, req)
    if (admit(req)) return start(req)
    pending = req
    blocked = true
    transport.pause()
  }

  // ---- handshake ------------------------------------------------------------------
  const onOption = (data: Buffer) => {
    mode = Mode.OptionHeader
    need = 16
    have = 0
    if (optionTooBig) {
      write([optionReply(option, Rep.ERR_TOO_BIG, Buffer.from("option data too long", "utf8"))])
      return
    }
    const outcome: OptionOutcome = handleOption(
      {
        table: deps.table,
        limits,
        shuttingDown: deps.shuttingDown(),
        send: (b) => write([b]),
        ...(deps.access === undefined ? {} : { access: deps.access })
      },
      hs,
      option,
      data
    )
    if (outcome._tag === "Close") {
      deps.onEvent({ _tag: "Dropped", reason: outcome.reason })
      return closeGracefully()
    }
    if (outcome._tag === "Wait") return awaitFence(outcome.settled, data)
    if (outcome._tag === "Transmission") {
      const n = outcome.negotiated
      const conn: AttachedConnection = { generation: n.generation, fence }
      if (!deps.table.attach(n.entry, conn)) return drop(`export ${n.entry.name} moved past generation ${n.generation}`)
      negotiated = n
      attached = conn
      deps.onEvent({ _tag: "Attached", export: n.entry.name, generation: n.generation })
      mode = Mode.RequestHeader
      need = 28
      have = 0
    }
  }

  // The export is being fenced: read nothing more (what arrives is stashed), and handle
  // the same option again once the old generation's connections have settled.
  const awaitFence = (settled: Promise<void>, data: Buffer) => {
    blocked = true
    transport.pause()
    void settled.then(() => {
      if (closed || closing) return
      blocked = false
      onOption(data)
      if (blocked || closed || closing) return
      const replay = stash
      stash = []
      for (const chunk of replay) feed(chunk)
      if (blocked || closed || closing) return
      transport.resume()
      if (peerEnded) ended()
    })
  }

  const onHeader = (b: Buffer, at: number) => {
    switch (mode) {
      case Mode.Flags: {
        const flags = b.readUInt32BE(at)
        if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) return drop(`unknown client flags 0x${flags.toString(16)}`)
        hs.noZeroes = (flags & CLIENT_FLAG_NO_ZEROES) !== 0
        mode = Mode.OptionHeader
        need = 16
        return
      }
      case Mode.OptionHeader: {
        if (!IHAVEOPT.equals(b.subarray(at, at + 8))) return drop("bad option magic")
        option = b.readUInt32BE(at + 8)
        const length = b.readUInt32BE(at + 12)
        optionTooBig = false
        if (length > limits.maxSkippedOptionLength) return drop(`option data of ${length} bytes`)
        if (length > limits.maxOptionLength) {
          optionTooBig = true
          mode = Mode.OptionSkip
          skipLeft = length
          return
        }
        if (length === 0) return onOption(Buffer.alloc(0))
        mode = Mode.OptionData
        target = Buffer.allocUnsafe(length)
        need = length
        return
      }
      case Mode.RequestHeader:
        return onRequestHeader(b, at)
    }
  }

  // ---- decoder --------------------------------------------------------------------
  const feed = (chunk: Buffer) => {
    let pos = 0
    const len = chunk.length
    while (pos < len) {
      if (closed) return
      if (blocked) {
        const rest = pos === 0 ? chunk : chunk.subarray(pos)
        stash.push(deps.chunksReused ? Buffer.from(rest) : rest)
        return
      }
      switch (mode) {
        case Mode.Flags:
        case Mode.OptionHeader:
        case Mode.RequestHeader: {
          if (mode === Mode.RequestHeader && draining) {
            stopReading()
            return
          }
          if (have === 0 && len - pos >= need) {
            const at = pos
            pos += need
            onHeader(chunk, at)
          } else {
            const n = Math.min(need - have, len - pos)
            chunk.copy(scratch, have, pos, pos + n)
            have += n
            pos += n
            if (have === need) {
              have = 0
              onHeader(scratch, 0)
            }
          }
          break
        }
        case Mode.OptionData:
        case Mode.RequestPayload: {
          const n = Math.min(need - have, len - pos)
          // Read straight into place (nextRead): nothing to copy.
          if (chunk.buffer !== target.buffer || chunk.byteOffset + pos !== target.byteOffset + have) chunk.copy(target, have, pos, pos + n)
          have += n
          pos += n
          if (have === need) {
            have = 0
            if (mode === Mode.OptionData) onOption(target)
            else {
              const req = current as Request
              current = undefined
              mode = Mode.RequestHeader
              need = 28
              dispatch(req)
            }
          }
          break
        }
        case Mode.OptionSkip:
        case Mode.RequestSkip: {
          const n = Math.min(skipLeft, len - pos)
          skipLeft -= n
          pos += n
          if (skipLeft === 0) {
            if (mode === Mode.OptionSkip) onOption(Buffer.alloc(0))
            else {
              const req = current as Request
              current = undefined
              mode = Mode.RequestHeader
              need = 28
              have = 0
              dispatch(req)
            }
          }
          break
        }
        case Mode.Stopped:
          return
      }
    }
    if (blocked || closed || mode === Mode.Stopped) return
    if (mode === Mode.RequestHeader && draining && have === 0) stopReading()
    else if (peerEnded) drop(negotiated === undefined ? "client left during the handshake" : "client closed mid-request")
  }

  // ---- fencing (called by the export registry) --------------------------------------
  const fence = (reason: string): Promise<void> => {
    fenced = true
    drop(reason)
    if (backendPending === 0) return Promise.resolve()
    return new Promise((resolve) => fenceWaiters.push(resolve))
  }

  const ended = () => {
    if (closed) return
    // Both sides have now ended: node closes the socket once our FIN is flushed.
    if (closing) return
    // No more requests will come: finish what was fully received, then close.
    peerEnded = true
    if (negotiated !== undefined) draining = true
    if (blocked) return
    if (mode === Mode.Stopped) return maybeFinishDrain()
    if (negotiated !== undefined && mode === Mode.RequestHeader && have === 0) return stopReading()
    drop(negotiated === undefined ? "client left during the handshake" : "client closed mid-request")
  }

  // A WRITE payload is read straight into its pooled buffer. Right after a WRITE header,
  // only the next header is read, so that the next payload does not land in the shared
  // buffer to be copied; READ headers come many per read into the shared buffer.
  const nextRead = (shared: Buffer): Buffer => {
    if (blocked || closed || closing) return shared
    if (mode === Mode.RequestPayload) return target.subarray(have, need)
    if (mode === Mode.RequestHeader && afterWrite) return headerIn.subarray(0, need - have)
    return shared
  }

  write([greeting()])

  return {
    onData: (chunk) => {
      inFeed = true
      try {
        feed(chunk)
      } finally {
        inFeed = false
      }
    },
    nextRead,
    onEnd: ended,
    onClose: () => {
      closed = true
      mode = Mode.Stopped
      stash = []
      leavePool()
      if (negotiated !== undefined && attached !== undefined) deps.table.detach(negotiated.entry, attached)
      for (const w of closeWaiters.splice(0)) w()
    },
    shutdown: () => {
      if (closed) return Promise.resolve()
      const done = new Promise<void>((resolve) => closeWaiters.push(resolve))
      if (negotiated === undefined) drop("server shutting down")
      else {
        draining = true
        // A partly received header is dropped; a payload being received is finished.
        if (mode === Mode.RequestHeader && !blocked) stopReading()
      }
      return done
    },
    inTransmission: () => negotiated !== undefined,
    drop,
    stats: () => ({
      inTransmission: negotiated !== undefined,
      inFlight,
      budgetUsed,
      blocked,
      receiving: current !== undefined,
      stashedBytes: stash.reduce((n, b) => n + b.length, 0),
      waitingForPool: cancelPoolWait !== undefined
    })
  }
}
