// Reused I/O buffers for the NBD data path. READ data is read straight into a pooled
// buffer and written to the socket from it; WRITE payloads are copied into one straight
// from the socket chunks. A buffer goes back to the pool when the socket's write callback
// (or the backend write) says it is no longer referenced, so steady-state traffic
// allocates nothing. Sizes are powers of two from 4 KiB; free buffers are kept up to
// `retainBytes` in total, beyond that they are left to the GC.

const MIN_CLASS = 12 // 4 KiB

export interface BufferPool {
  // A buffer of at least `length` bytes (its length is the size class).
  readonly take: (length: number) => Buffer
  readonly give: (buf: Buffer) => void
  // Bytes a request of `length` bytes holds while in flight (its class size).
  readonly classSize: (length: number) => number
  readonly retainedBytes: () => number
}

const classOf = (length: number): number => {
  if (length <= 1 << MIN_CLASS) return MIN_CLASS
  return 32 - Math.clz32(length - 1)
}

export const makeBufferPool = (retainBytes: number): BufferPool => {
  const free: Array<Array<Buffer>> = []
  let retained = 0
  return {
    take: (length) => {
      const c = classOf(length)
      const list = free[c]
      const buf = list?.pop()
      if (buf !== undefined) {
        retained -= buf.length
        return buf
      }
      return Buffer.allocUnsafeSlow(2 ** c)
    },
    give: (buf) => {
      if (retained + buf.length > retainBytes) return
      const c = classOf(buf.length)
      if (2 ** c !== buf.length) return
      const list = free[c] ?? (free[c] = [])
      list.push(buf)
      retained += buf.length
    },
    classSize: (length) => 2 ** classOf(length),
    retainedBytes: () => retained
  }
}
