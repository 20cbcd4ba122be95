import { type ExportBackend, type Extent, isBackendFailure } from "./backend.js"
import type { Limits, Negotiated } from "./handshake.js"
import { BASE_ALLOCATION_ID, Cmd, CmdFlag, Errno, STATE_HOLE, STATE_ZERO } from "./protocol.js"
import { blockStatusChunk, errorChunk, noneChunk, offsetDataHeader, simpleReply } from "./replies.js"

// Transmission phase: what each command checks, does and answers. connection.ts frames
// requests, admits them (in-flight and buffer budget) and writes what this file builds.

export interface Request {
  readonly flags: number
  readonly type: number
  readonly cookieHi: number
  readonly cookieLo: number
  readonly offset: number
  readonly length: number
  // Pooled buffer: READ destination or WRITE payload (set on admission).
  buf: Buffer | undefined
  // Budget bytes held while in flight.
  held: number
  // Non-zero when the request is answered with an error without touching the backend.
  errno: number
  message: string
}

const MAX_EXTENTS = 1 << 16

const fail = (req: Request, errno: number, message: string): void => {
  req.errno = errno
  req.message = message
}

const checkFlags = (req: Request, allowed: number): boolean => {
  if ((req.flags & ~allowed) === 0) return true
  fail(req, Errno.EINVAL, `flags 0x${req.flags.toString(16)} not valid for command ${req.type}`)
  return false
}

// Fills req.errno when the request must be refused; a WRITE refused here still has its
// payload drained by the caller.
export const precheck = (n: Negotiated, limits: Limits, req: Request): void => {
  const { size } = n
  const end = req.offset + req.length
  const readOnly = n.entry.readOnly
  const b = n.entry.backend
  switch (req.type) {
    case Cmd.READ:
      if (!checkFlags(req, CmdFlag.FUA | (n.structured ? CmdFlag.DF : 0))) return
      if (end > size) return fail(req, Errno.EINVAL, "read past the end of the export")
      if (req.length > limits.maxPayload) return fail(req, Errno.EINVAL, `read longer than the ${limits.maxPayload}-byte maximum payload`)
      return
    case Cmd.WRITE:
      if (!checkFlags(req, CmdFlag.FUA)) return
      if (readOnly) return fail(req, Errno.EPERM, "export is read-only")
      if (end > size) return fail(req, Errno.ENOSPC, "write past the end of the export")
      if (req.length > limits.maxPayload) return fail(req, Errno.EINVAL, `write longer than the ${limits.maxPayload}-byte maximum payload`)
      return
    case Cmd.FLUSH:
      if (!checkFlags(req, CmdFlag.FUA)) return
      if (req.offset !== 0 || req.length !== 0) return fail(req, Errno.EINVAL, "flush offset and length must be 0")
      return
    case Cmd.TRIM:
      if (!checkFlags(req, CmdFlag.FUA)) return
      if (readOnly) return fail(req, Errno.EPERM, "export is read-only")
      if (!b.canTrim) return fail(req, Errno.EINVAL, "trim not supported by this export")
      if (end > size) return fail(req, Errno.EINVAL, "trim past the end of the export")
      return
    case Cmd.WRITE_ZEROES:
      if (!checkFlags(req, CmdFlag.FUA | CmdFlag.NO_HOLE | (b.canFastZero ? CmdFlag.FAST_ZERO : 0))) return
      if (readOnly) return fail(req, Errno.EPERM, "export is read-only")
      if (!b.canZero) return fail(req, Errno.EINVAL, "write-zeroes not supported by this export")
      if (end > size) return fail(req, Errno.ENOSPC, "write-zeroes past the end of the export")
      return
    case Cmd.CACHE:
      if (!checkFlags(req, CmdFlag.FUA)) return
      if (end > size) return fail(req, Errno.EINVAL, "cache past the end of the export")
      return
    case Cmd.BLOCK_STATUS:
      if (!checkFlags(req, CmdFlag.FUA | CmdFlag.REQ_ONE)) return
      if (!n.allocation) return fail(req, Errno.EINVAL, "no meta context negotiated for block status")
      if (req.length === 0) return fail(req, Errno.EINVAL, "block status of 0 bytes")
      if (end > size) return fail(req, Errno.EINVAL, "block status past the end of the export")
      return
    default:
      return fail(req, Errno.EINVAL, `unknown command ${req.type}`)
  }
}

// Whether the request holds a data buffer while in flight.
export const needsBuffer = (req: Request): boolean =>
  req.errno === 0 && req.length > 0 && (req.type === Cmd.READ || req.type === Cmd.WRITE)

// Performs the command on the backend. Resolves with the BLOCK_STATUS extents, else void.
export const execute = (backend: ExportBackend, req: Request): Promise<ReadonlyArray<Extent> | void> => {
  const fua = (req.flags & CmdFlag.FUA) !== 0
  switch (req.type) {
    case Cmd.READ:
      return req.length === 0 ? Promise.resolve() : backend.read(req.buf as Buffer, req.length, req.offset)
    case Cmd.WRITE:
      return req.length === 0 ? Promise.resolve() : backend.write(req.buf as Buffer, req.length, req.offset, fua)
    case Cmd.FLUSH:
      return backend.flush()
    case Cmd.TRIM:
      return req.length === 0 ? Promise.resolve() : backend.trim(req.offset, req.length, fua)
    case Cmd.WRITE_ZEROES:
      return req.length === 0
        ? Promise.resolve()
        : backend.zero(req.offset, req.length, {
            mayTrim: (req.flags & CmdFlag.NO_HOLE) === 0,
            fast: (req.flags & CmdFlag.FAST_ZERO) !== 0,
            fua
          })
    case Cmd.CACHE:
      return req.length === 0 ? Promise.resolve() : backend.cache(req.offset, req.length)
    case Cmd.BLOCK_STATUS:
      return backend.extents(req.offset, req.length)
    default:
      return Promise.reject(new Error(`unknown command ${req.type}`))
  }
}

// The NBD errno for a backend rejection. ENOTSUP is only legal as a FAST_ZERO answer.
export const errnoOf = (req: Request, err: unknown): number => {
  if (isBackendFailure(err)) {
    if (err.nbdErrno === "ENOTSUP" && (req.type !== Cmd.WRITE_ZEROES || (req.flags & CmdFlag.FAST_ZERO) === 0)) return Errno.EIO
    return Errno[err.nbdErrno]
  }
  return Errno.EIO
}

// Structured replies are used for READ and BLOCK_STATUS once negotiated; every other
// command keeps simple replies (allowed, and what the kernel client expects).
const structuredFor = (n: Negotiated, req: Request) => n.structured && (req.type === Cmd.READ || req.type === Cmd.BLOCK_STATUS)

export const errorReply = (n: Negotiated, req: Request, errno: number, message: string): Buffer =>
  structuredFor(n, req) ? errorChunk(req.cookieHi, req.cookieLo, errno, message) : simpleReply(errno, req.cookieHi, req.cookieLo)

// The buffers of a successful reply, in order.
export const successReply = (n: Negotiated, req: Request, result: ReadonlyArray<Extent> | void): Array<Buffer> | string => {
  const { cookieHi, cookieLo } = req
  if (req.type === Cmd.READ) {
    if (req.length === 0) return [n.structured ? noneChunk(cookieHi, cookieLo) : simpleReply(0, cookieHi, cookieLo)]
    const data = (req.buf as Buffer).subarray(0, req.length)
    return n.structured
      ? [offsetDataHeader(cookieHi, cookieLo, req.offset, req.length, true), data]
      : [simpleReply(0, cookieHi, cookieLo), data]
  }
  if (req.type === Cmd.BLOCK_STATUS) {
    const extents = encodeExtents(n.size, req, result ?? [])
    if (typeof extents === "string") return extents
    return [blockStatusChunk(cookieHi, cookieLo, BASE_ALLOCATION_ID, extents)]
  }
  return [simpleReply(0, cookieHi, cookieLo)]
}

// Backend extents → wire extents: no zero lengths, adjacent equal states merged, stop
// once the request length is covered. The last extent may run past the request, up to
// the export end (as nbdkit does: a client walking the export then needs fewer
// requests); REQ_ONE gives exactly one extent no longer than the request. Lengths stay
// u32, 4 KiB multiples when capped.
const EXTENT_MAX = 0xfffff000

export const encodeExtents = (
  size: number,
  req: Request,
  extents: ReadonlyArray<Extent>
): Array<readonly [number, number]> | string => {
  const out: Array<[number, number]> = []
  const reqOne = (req.flags & CmdFlag.REQ_ONE) !== 0
  const wanted = Math.min(req.offset + req.length, size) - req.offset
  const limit = reqOne ? wanted : size - req.offset
  let covered = 0
  for (const e of extents) {
    if (covered >= wanted || out.length >= MAX_EXTENTS) break
    if (!(e.length > 0)) continue
    const flags = (e.hole ? STATE_HOLE : 0) | (e.zero ? STATE_ZERO : 0)
    const len = Math.min(e.length, limit - covered, EXTENT_MAX)
    covered += len
    const last = out[out.length - 1]
    if (last !== undefined && last[1] === flags && last[0] + len <= EXTENT_MAX) last[0] += len
    else out.push([len, flags])
    if (reqOne) break
  }
  if (out.length === 0) return "backend reported no extents"
  return out
}
