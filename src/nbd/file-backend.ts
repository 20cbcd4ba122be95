// An NBD export backed by one (usually sparse) regular file: positioned reads and writes
// through Node's fs on caller-owned buffers, durability by fdatasync, and the sparse
// operations (TRIM, WRITE_ZEROES, BLOCK_STATUS, CACHE) through libc (see libc.ts).
import { Effect, Schema, type Scope } from "effect"
import * as fs from "node:fs"
import { type BackendErrno, backendFailure, type ExportBackend, type Extent } from "./backend.js"
import * as libc from "./libc.js"

export class ExportOpenError extends Schema.TaggedError<ExportOpenError>()("ExportOpenError", {
  path: Schema.String,
  // errno name from the failed open/stat ("ENOENT", "EACCES", ...) or "ENOTREG".
  reason: Schema.String,
  message: Schema.String
}) {}

export interface FileBackendOptions {
  readonly readOnly: boolean
}

// Host errno → the NBD error the spec allows us to send. ENOTSUP is reserved for
// FAST_ZERO and raised explicitly, so an unexpected host EOPNOTSUPP is an I/O error.
export const nbdErrnoOf = (code: string | undefined): BackendErrno => {
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
    case "EFBIG":
      return "ENOSPC"
    case "EPERM":
    case "EACCES":
    case "EROFS":
      return "EPERM"
    case "EINVAL":
      return "EINVAL"
    default:
      return "EIO"
  }
}

const codeOf = (err: unknown): string | undefined =>
  typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string"
    ? (err as { code: string }).code
    : undefined

const isUnsupported = (err: libc.SyscallError): boolean => err.code === "EOPNOTSUPP" || err.code === "ENOTSUP" || err.code === "ENOSYS"

// Zeroes written when the filesystem cannot zero a range itself. Never written to, so
// every export and every concurrent request may share it.
const ZERO_CHUNK = 1 << 20
let zeroChunk: Buffer | undefined
const zeroes = (): Buffer => (zeroChunk ??= Buffer.alloc(ZERO_CHUNK))

// A BLOCK_STATUS reply SHOULD stay under 2^20 extents; the client asks again for the rest.
const MAX_EXTENTS = 1 << 16

const openFd = (path: string, readOnly: boolean): Promise<{ fd: number; size: number }> =>
  new Promise((resolve, reject) => {
    fs.open(path, readOnly ? "r" : "r+", (err, fd) => {
      if (err) return reject(err)
      fs.fstat(fd, (err2, st) => {
        if (err2 || !st.isFile()) {
          // Rejects once the fd is really closed: nothing of a failed open outlives it.
          const failure = err2 ?? Object.assign(new Error(`${path} is not a regular file`), { code: "ENOTREG" })
          return fs.close(fd, () => reject(failure))
        }
        resolve({ fd, size: st.size })
      })
    })
  })

// Promise form, for callers outside Effect (tests, benchmarks). Prefer `openFileBackend`.
export const openFileBackendPromise = async (path: string, options: FileBackendOptions): Promise<ExportBackend> => {
  const { fd, size } = await openFd(path, options.readOnly)
  return makeFileBackend(path, fd, size, options.readOnly)
}

// The export's file stays open for the lifetime of the scope (the exports registry).
export const openFileBackend = (
  path: string,
  options: FileBackendOptions
): Effect.Effect<ExportBackend, ExportOpenError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => openFileBackendPromise(path, options),
      catch: (err) =>
        new ExportOpenError({
          path,
          reason: codeOf(err) ?? "EIO",
          message: `cannot open NBD export file ${path}${options.readOnly ? " (read-only)" : ""}: ${err instanceof Error ? err.message : String(err)}`
        })
    }),
    (backend) =>
      Effect.tryPromise(() => backend.close()).pipe(
        Effect.catchAll((err) => Effect.logWarning(`closing NBD export file ${path} failed`, err))
      )
  )

// Positioned read of buf[done, length) at position + done, looping on short reads. A
// plain function, not a closure per request: this runs for every READ.
const readFrom = (
  fd: number,
  buf: Buffer,
  done: number,
  length: number,
  position: number,
  resolve: () => void,
  reject: (err: unknown) => void
): void => {
  fs.read(fd, buf, done, length - done, position + done, (err, n) => {
    if (err) return reject(err)
    // Past the end of the file (it shrank under us): the export reads as zeroes.
    if (n === 0) {
      buf.fill(0, done, length)
      return resolve()
    }
    if (done + n < length) readFrom(fd, buf, done + n, length, position, resolve, reject)
    else resolve()
  })
}

const writeTo = (
  fd: number,
  buf: Buffer,
  done: number,
  length: number,
  position: number,
  resolve: () => void,
  reject: (err: unknown) => void
): void => {
  fs.write(fd, buf, done, length - done, position + done, (err, n) => {
    if (err) return reject(err)
    if (done + n < length) writeTo(fd, buf, done + n, length, position, resolve, reject)
    else resolve()
  })
}

// WRITEs up to this size are written synchronously (pwrite into the page cache, ~50 µs
// for 256 KiB) instead of on the libuv threadpool. Measured with nbd-bench-peer on this
// 2-core box, the threadpool round trip per request (queue, wake a worker, post back)
// cost 0.6-0.7 s of server CPU per GB written against 0.42 s synchronously, and 20-30 %
// of throughput. The loop blocks no longer than the pool would delay the next request:
// when the kernel throttles a writer (dirty page limits), the pool's 4 threads stall
// too, and reads queue behind them. Larger writes (up to 32 MiB) still go to the pool
// so one request cannot hold the loop for milliseconds.
const SYNC_WRITE_MAX = 1 << 20
// READs up to this size first take what the page cache holds synchronously (preadv2
// with RWF_NOWAIT, which never waits for the disk), for the same reason; the rest (a
// page-cache miss) is read on the pool.
const SYNC_READ_MAX = 1 << 20

const makeFileBackend = (path: string, fd: number, size: number, readOnly: boolean): ExportBackend => {
  let closed = false
  // Remembered after the first EOPNOTSUPP so later requests skip the failing syscall.
  let canPunch = true
  let canZeroRange = true

  const fail = (nbdErrno: BackendErrno, op: string, detail: string) =>
    backendFailure(nbdErrno, `${op} on ${path}: ${detail}`)
  const hostFailure = (op: string, offset: number, length: number, err: unknown) =>
    fail(nbdErrnoOf(codeOf(err)), op, `offset ${offset} length ${length}: ${err instanceof Error ? err.message : String(err)}`)

  // Validates before touching the file. The fd number of a closed export may already
  // belong to another file, so nothing may reach it after close.
  const check = (op: string, offset: number, length: number, beyondEnd: BackendErrno, write: boolean): Error | undefined => {
    if (closed) return fail("EIO", op, "export is closed")
    if (write && readOnly) return fail("EPERM", op, "export is read-only")
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      return fail("EINVAL", op, `bad range offset ${offset} length ${length}`)
    }
    if (offset + length > size) return fail(beyondEnd, op, `offset ${offset} + length ${length} is beyond the export size ${size}`)
    return undefined
  }

  // fdatasync makes every write that completed before it started durable. Callers that
  // arrive while one is running share the next one, never the running one: it may have
  // started before their writes completed.
  let syncing: Promise<void> | undefined
  let nextSync: Promise<void> | undefined
  const syncNow = (): Promise<void> => {
    const p = new Promise<void>((resolve, reject) => {
      fs.fdatasync(fd, (err) => (err ? reject(hostFailure("fdatasync", 0, size, err)) : resolve()))
    })
    syncing = p
    const done = () => {
      if (syncing === p) syncing = undefined
    }
    p.then(done, done)
    return p
  }
  const flush = (): Promise<void> => {
    if (closed) return Promise.reject(fail("EIO", "flush", "export is closed"))
    if (syncing === undefined) return syncNow()
    if (nextSync === undefined) {
      const after = () => {
        nextSync = undefined
        return syncNow()
      }
      nextSync = syncing.then(after, after)
    }
    return nextSync
  }

  // Cleared when the kernel or filesystem refuses RWF_NOWAIT: the threadpool does it all.
  let canReadNoWait = true

  // What the page cache already holds is copied here on the loop; what needs the disk is
  // read on the threadpool, which is otherwise a round trip (queue, wake a worker, post
  // back) per request.
  const readCached = (buf: Buffer, length: number, offset: number): number | Error => {
    if (!canReadNoWait || length > SYNC_READ_MAX) return 0
    const n = libc.preadNoWait(fd, buf, 0, length, offset)
    if (typeof n === "number") return n
    if (n.errno === libc.EAGAIN) return 0
    if (n.code === "EOPNOTSUPP" || n.code === "EINVAL" || isUnsupported(n)) {
      canReadNoWait = false
      return 0
    }
    return hostFailure("read", offset, length, n)
  }

  const read = (buf: Buffer, length: number, offset: number): Promise<void> => {
    const bad = check("read", offset, length, "EINVAL", false)
    if (bad) return Promise.reject(bad)
    if (length === 0) return Promise.resolve()
    const cached = readCached(buf, length, offset)
    if (typeof cached !== "number") return Promise.reject(cached)
    if (cached === length) return Promise.resolve()
    return new Promise((resolve, reject) =>
      readFrom(fd, buf, cached, length, offset, resolve, (err) => reject(hostFailure("read", offset, length, err)))
    )
  }

  const writeAll = (buf: Buffer, length: number, offset: number): Promise<void> => {
    if (length <= SYNC_WRITE_MAX) {
      try {
        for (let done = 0; done < length; ) done += fs.writeSync(fd, buf, done, length - done, offset + done)
        return Promise.resolve()
      } catch (err) {
        return Promise.reject(hostFailure("write", offset, length, err))
      }
    }
    return new Promise((resolve, reject) => writeTo(fd, buf, 0, length, offset, resolve, (err) => reject(hostFailure("write", offset, length, err))))
  }

  const write = (buf: Buffer, length: number, offset: number, fua: boolean): Promise<void> => {
    const bad = check("write", offset, length, "ENOSPC", true)
    if (bad) return Promise.reject(bad)
    if (length === 0) return fua ? flush() : Promise.resolve()
    const w = writeAll(buf, length, offset)
    return fua ? w.then(flush) : w
  }

  // Runs fallocate; `false` when the filesystem does not support the mode.
  const tryFallocate = async (op: string, mode: number, offset: number, length: number): Promise<boolean> => {
    try {
      await libc.fallocate(fd, mode, offset, length)
      return true
    } catch (err) {
      if (typeof err === "object" && err !== null && "syscall" in err && isUnsupported(err as libc.SyscallError)) return false
      throw hostFailure(op, offset, length, err)
    }
  }

  const PUNCH = libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE

  const trim = async (offset: number, length: number, fua: boolean): Promise<void> => {
    const bad = check("trim", offset, length, "EINVAL", true)
    if (bad) throw bad
    // TRIM is advisory: on a filesystem that cannot punch holes it is a successful no-op.
    if (length > 0 && canPunch) canPunch = await tryFallocate("trim (punch hole)", PUNCH, offset, length)
    if (fua) await flush()
  }

  const writeZeroes = async (offset: number, length: number): Promise<void> => {
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, length - done)
      await writeAll(zeroes(), n, offset + done)
    }
  }

  // In order (as nbdkit's file plugin): punch a hole if the client allows one, else let
  // the filesystem zero the range (ZERO_RANGE, or punch + re-allocate for NO_HOLE),
  // else write zeroes, unless the client asked for a fast zero (then ENOTSUP, data untouched).
  const zeroRange = async (offset: number, length: number, mayTrim: boolean, fast: boolean): Promise<void> => {
    if (mayTrim && canPunch) {
      if (await tryFallocate("write zeroes (punch hole)", PUNCH, offset, length)) return
      canPunch = false
    }
    if (canZeroRange) {
      const mode = libc.FALLOC_FL_ZERO_RANGE | libc.FALLOC_FL_KEEP_SIZE
      if (await tryFallocate("write zeroes (zero range)", mode, offset, length)) return
      canZeroRange = false
    }
    if (canPunch) {
      if (await tryFallocate("write zeroes (punch hole)", PUNCH, offset, length)) {
        // The range reads as zeroes now; allocate it again to honour NO_HOLE. Were that
        // unsupported, the data is already changed: writing zeroes is then the only
        // honest way on, even for a fast zero.
        if (await tryFallocate("write zeroes (allocate)", libc.FALLOC_FL_KEEP_SIZE, offset, length)) return
        return writeZeroes(offset, length)
      } else {
        canPunch = false
      }
    }
    if (fast) throw fail("ENOTSUP", "fast write zeroes", "the filesystem cannot zero a range without writing it")
    await writeZeroes(offset, length)
  }

  const zero = async (
    offset: number,
    length: number,
    opts: { readonly mayTrim: boolean; readonly fast: boolean; readonly fua: boolean }
  ): Promise<void> => {
    const bad = check("write zeroes", offset, length, "ENOSPC", true)
    if (bad) throw bad
    if (length > 0) await zeroRange(offset, length, opts.mayTrim, opts.fast)
    if (opts.fua) await flush()
  }

  const cache = (offset: number, length: number): Promise<void> => {
    const bad = check("cache", offset, length, "EINVAL", false)
    if (bad) return Promise.reject(bad)
    // Length 0 means "to the end of the file" to posix_fadvise; here it means nothing.
    if (length === 0) return Promise.resolve()
    return libc
      .fadvise(fd, offset, length, libc.POSIX_FADV_WILLNEED)
      .catch((err: unknown) => Promise.reject(hostFailure("cache (posix_fadvise)", offset, length, err)))
  }

  // SEEK_DATA/SEEK_HOLE walk, as nbdkit's file plugin does. lseek moves the shared file
  // offset, but every read and write here is positioned (pread/pwrite), and these calls
  // run synchronously on the one JS thread, so no lock is needed.
  const extents = (offset: number, length: number): Promise<ReadonlyArray<Extent>> => {
    const bad = check("block status", offset, length, "EINVAL", false)
    if (bad) return Promise.reject(bad)
    const end = offset + length
    const out: Array<Extent> = []
    let pos = offset
    while (pos < end && out.length < MAX_EXTENTS) {
      const data = libc.lseek(fd, pos, libc.SEEK_DATA)
      let dataStart: number
      if (typeof data === "number") dataStart = Math.min(data, size)
      // ENXIO: no data at or after pos, the rest of the file is a hole.
      else if (data.code === "ENXIO") dataStart = size
      // A filesystem without SEEK_DATA: "data" is always a truthful answer.
      else if (data.code === "EINVAL" || isUnsupported(data)) return Promise.resolve([...out, { length: end - pos, hole: false, zero: false }])
      else return Promise.reject(hostFailure("block status (SEEK_DATA)", offset, length, data))
      // The last extent runs to its real end: the answer costs the same lseek calls.
      if (dataStart > pos) {
        out.push({ length: dataStart - pos, hole: true, zero: true })
        pos = dataStart
        continue
      }
      const hole = libc.lseek(fd, pos, libc.SEEK_HOLE)
      if (typeof hole !== "number") return Promise.reject(hostFailure("block status (SEEK_HOLE)", offset, length, hole))
      // SEEK_HOLE finds the implicit hole at EOF at worst, so hole > pos while pos < EOF;
      // a file truncated under us can give hole == pos: report the rest as data.
      const stop = hole > pos ? Math.min(hole, size) : end
      out.push({ length: stop - pos, hole: false, zero: false })
      pos = stop
    }
    return Promise.resolve(out)
  }

  const close = (): Promise<void> => {
    if (closed) return Promise.resolve()
    closed = true
    return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())))
  }

  return {
    size,
    readOnly,
    // Every connection to this export uses this one fd, with no cache of our own: data
    // lives in the kernel page cache of the shared inode, and fdatasync flushes the
    // writes of all connections, so FLUSH/FUA on one connection covers them all.
    multiConn: true,
    canTrim: !readOnly,
    canZero: !readOnly,
    // Fast zero succeeds whenever the filesystem can punch or zero a range and fails
    // with ENOTSUP (before touching data) only where we would have to write zeroes.
    canFastZero: !readOnly,
    read,
    write,
    flush,
    trim,
    zero,
    cache,
    extents,
    close
  }
}
