// The few Linux syscalls a sparse-file NBD export needs and Node's `fs` lacks:
// fallocate (punch hole / zero range), lseek(SEEK_DATA/SEEK_HOLE), posix_fadvise and
// preadv2(RWF_NOWAIT).
//
// Why koffi and not a native addon such as `fs-native-extensions`: koffi ships its
// binary inside an npm package per platform (`@koromix/koffi-linux-x64`, an optional
// dependency), so nothing is compiled or downloaded at install time. npm 11 runs no
// install scripts unless allowed, and addons that build with node-gyp (or fetch a
// prebuild in a script) would need one; `fs-native-extensions` also has no lseek with
// SEEK_DATA/SEEK_HOLE. koffi binds any libc symbol by its C prototype.
//
// fdatasync is not here: Node's `fs.fdatasync` already runs it on the libuv threadpool.
import koffi from "koffi"
import { constants as osConstants } from "node:os"

export const FALLOC_FL_KEEP_SIZE = 0x01
export const FALLOC_FL_PUNCH_HOLE = 0x02
export const FALLOC_FL_ZERO_RANGE = 0x10
export const SEEK_DATA = 3
export const SEEK_HOLE = 4
export const POSIX_FADV_WILLNEED = 3
export const RWF_NOWAIT = 0x08
export const EAGAIN = 11

// A failed syscall: the symbolic errno (as Node's fs errors carry it) and its number.
export interface SyscallError extends Error {
  readonly code: string
  readonly errno: number
  readonly syscall: string
}

const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(osConstants.errno).map(([name, n]) => [n, name] as const)
)

export const syscallError = (syscall: string, errno: number): SyscallError => {
  const code = errnoNames.get(errno) ?? `E${errno}`
  return Object.assign(new Error(`${syscall}: ${code} (errno ${errno})`), { code, errno, syscall })
}

// off_t is 64-bit on every 64-bit Linux ABI (and glibc's lseek/fallocate symbols take it).
const libc = koffi.load("libc.so.6")
const fallocateFn = libc.func("int fallocate(int fd, int mode, int64_t offset, int64_t len)")
const lseekFn = libc.func("int64_t lseek(int fd, int64_t offset, int whence)")
const fadviseFn = libc.func("int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)")
// The iovec is built by hand in a Buffer (koffi passes a Buffer argument as a pointer to
// its bytes, no copy): a koffi struct argument would be marshalled on every call.
const preadv2Fn = libc.func("int64_t preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)")
const iov = Buffer.alloc(16)

// Synchronous: on a local filesystem lseek takes microseconds (lseek ≈ 0.7 µs here), less
// than a trip through the threadpool. errno is read right after the call, before any
// other JS can run a syscall on this thread.
export const lseek = (fd: number, offset: number, whence: number): number | SyscallError => {
  const r = Number(lseekFn(fd, offset, whence))
  return r < 0 ? syscallError("lseek", koffi.errno()) : r
}

// preadv2 with RWF_NOWAIT: reads what the page cache holds into buf[start, end) and
// returns the byte count (possibly short), or fails with EAGAIN when the first page is
// not cached, without ever waiting for the disk. Synchronous, so it costs the loop only
// the copy. EOPNOTSUPP/EINVAL: the filesystem or kernel cannot do it.
export const preadNoWait = (fd: number, buf: Buffer, start: number, end: number, position: number): number | SyscallError => {
  // Out of bounds would be the kernel writing over someone else's memory.
  if (!(start >= 0 && start <= end && end <= buf.length)) throw new RangeError(`preadNoWait: [${start}, ${end}) outside a ${buf.length}-byte buffer`)
  iov.writeBigUInt64LE(koffi.address(buf) + BigInt(start), 0)
  iov.writeBigUInt64LE(BigInt(end - start), 8)
  const r = Number(preadv2Fn(fd, iov, 1, position, RWF_NOWAIT))
  return r < 0 ? syscallError("preadv2", koffi.errno()) : r
}

// fallocate and posix_fadvise run on a worker thread (libuv threadpool via koffi's async
// call): measured here, punching a hole over 1 GiB of data takes ~430 ms and ZERO_RANGE
// over 1 GiB ~50 ms, and WILLNEED submits readahead for the whole range: far too long to
// block every connection's event loop. koffi saves the worker's errno and restores it
// around the callback, so koffi.errno() is right there.
// At most WORKER_SLOTS run at once, the rest wait here: koffi throws past 256 queued
// async calls, the threadpool (4 threads) is shared with every fs read and write, and
// the kernel serialises fallocate on one inode anyway.
const WORKER_SLOTS = 2
let workersRunning = 0
const workersWaiting: Array<() => void> = []

const onWorker = async (call: (done: (err: unknown, r: number) => void) => void): Promise<number> => {
  // A finishing call hands its slot straight to the first waiter.
  if (workersRunning >= WORKER_SLOTS) await new Promise<void>((takeSlot) => workersWaiting.push(takeSlot))
  else workersRunning++
  try {
    return await new Promise<number>((resolve, reject) =>
      call((err, r) => (err !== null && err !== undefined ? reject(err) : resolve(r)))
    )
  } finally {
    const next = workersWaiting.shift()
    if (next) next()
    else workersRunning--
  }
}

// Resolves, or rejects with a SyscallError.
export const fallocate = async (fd: number, mode: number, offset: number, length: number): Promise<void> => {
  let errno = 0
  const r = await onWorker((done) =>
    fallocateFn.async(fd, mode, offset, length, (err: unknown, r: number) => {
      if (r !== 0) errno = koffi.errno()
      done(err, r)
    })
  )
  if (r !== 0) throw syscallError("fallocate", errno)
}

// posix_fadvise returns the error number instead of setting errno.
export const fadvise = async (fd: number, offset: number, length: number, advice: number): Promise<void> => {
  const r = await onWorker((done) => fadviseFn.async(fd, offset, length, advice, done))
  if (r !== 0) throw syscallError("posix_fadvise", r)
}

// glibc keeps freed heap memory mapped for reuse; malloc_trim(0) returns every free page
// of every arena to the system (madvise), not only the top of the main heap. Returns
// whether anything was released.
const mallocTrimFn = libc.func("int malloc_trim(size_t pad)")
export const mallocTrim = (): boolean => Number(mallocTrimFn(0)) === 1

// setsockopt on a socket's descriptor: the TCP knobs Node's net module does not expose
// (tcp-dead-peer.ts). The value is an int, passed by pointer.
const setsockoptFn = libc.func("int setsockopt(int fd, int level, int optname, void *optval, uint32_t optlen)")
const optval = Buffer.alloc(4)
export const setsockoptInt = (fd: number, level: number, name: number, value: number): SyscallError | undefined => {
  optval.writeInt32LE(value, 0)
  return setsockoptFn(fd, level, name, optval, 4) === 0 ? undefined : syscallError("setsockopt", koffi.errno())
}
