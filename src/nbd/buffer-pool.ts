// Reused I/O buffers for the NBD data path, and the memory budget all connections share.
// READ data is read straight into a pooled buffer and written to the socket from it; WRITE
// payloads are received into one. A buffer goes back to the pool when the socket's write
// callback (or the backend write) says it is no longer referenced, so steady-state
// traffic allocates nothing. Sizes are powers of two from 4 KiB.
//
// The budget bounds every data buffer the server holds: those handed out (in flight) plus
// the free ones kept for reuse. A free buffer is kept only while it fits beside what is
// handed out, and free buffers of other sizes are dropped to make room for a new one, so
// the pool never stands between a request and its budget. A take that does not fit
// waits in line, first come first served: a small request cannot overtake a large one
// that is waiting, so a request above any fair share still gets its turn once enough
// comes back. A single request larger than the whole budget is handed out only when
// nothing else is out (it alone may exceed the budget; nothing can run beside it).

const MIN_CLASS = 12 // 4 KiB

export interface PoolStats {
  readonly budgetBytes: number
  // Handed out and not given back yet.
  readonly heldBytes: number
  // Free, kept for reuse.
  readonly retainedBytes: number
  // Highest heldBytes + retainedBytes seen.
  readonly peakBytes: number
  // Takes queued for budget.
  readonly waiting: number
  // Buffers handed out since the pool was made (activity probe of the idle trimmer).
  readonly takes: number
}

export interface BufferPool {
  // A buffer of at least `length` bytes (its length is the size class), charged to the
  // budget; undefined when it does not fit now or others are already waiting.
  readonly tryTake: (length: number) => Buffer | undefined
  // Waits in line for a buffer: `granted` runs (from within a `give` or a cancel) once it
  // is charged. The returned function cancels the wait; after `granted` it does nothing.
  readonly waitFor: (length: number, granted: (buf: Buffer) => void) => () => void
  // Gives back a buffer from tryTake/waitFor (exactly once).
  readonly give: (buf: Buffer) => void
  // Bytes a request of `length` bytes holds while in flight (its class size).
  readonly classSize: (length: number) => number
  // Drops every free buffer kept for reuse (load fell); returns the bytes dropped.
  readonly trim: () => number
  readonly stats: () => PoolStats
}

const classOf = (length: number): number => {
  if (length <= 1 << MIN_CLASS) return MIN_CLASS
  return 32 - Math.clz32(length - 1)
}

interface Waiter {
  readonly size: number
  readonly granted: (buf: Buffer) => void
}

export const makeBufferPool = (budgetBytes: number): BufferPool => {
  if (!(Number.isSafeInteger(budgetBytes) && budgetBytes > 0)) throw new RangeError(`buffer pool budget must be a positive integer, got ${budgetBytes}`)
  const free: Array<Array<Buffer>> = []
  const queue: Array<Waiter> = []
  let held = 0
  let retained = 0
  let peak = 0
  let takes = 0

  const fits = (size: number) => held === 0 || held + size <= budgetBytes

  // Drops free buffers, largest classes first, until `size` more bytes fit in the budget.
  const makeRoom = (size: number) => {
    for (let c = free.length - 1; c >= MIN_CLASS && held + retained + size > budgetBytes; c--) {
      const list = free[c]
      while (list !== undefined && list.length > 0 && held + retained + size > budgetBytes) {
        list.pop()
        retained -= 2 ** c
      }
    }
  }

  const charge = (size: number): Buffer => {
    const c = classOf(size)
    const reused = free[c]?.pop()
    if (reused !== undefined) retained -= reused.length
    else makeRoom(size)
    held += size
    takes++
    if (held + retained > peak) peak = held + retained
    return reused ?? Buffer.allocUnsafeSlow(size)
  }

  // Hands buffers to waiters, in order, while the first one fits.
  const pump = () => {
    while (queue.length > 0) {
      const head = queue[0] as Waiter
      if (!fits(head.size)) return
      queue.shift()
      head.granted(charge(head.size))
    }
  }

  return {
    tryTake: (length) => {
      const size = 2 ** classOf(length)
      if (queue.length > 0 || !fits(size)) return undefined
      return charge(size)
    },
    waitFor: (length, granted) => {
      const waiter: Waiter = { size: 2 ** classOf(length), granted }
      queue.push(waiter)
      pump()
      return () => {
        const i = queue.indexOf(waiter)
        if (i < 0) return
        queue.splice(i, 1)
        // The first in line may have been what held the others back.
        if (i === 0) pump()
      }
    },
    give: (buf) => {
      held -= buf.length
      const c = classOf(buf.length)
      if (2 ** c === buf.length && held + retained + buf.length <= budgetBytes) {
        ;(free[c] ?? (free[c] = [])).push(buf)
        retained += buf.length
      }
      pump()
    },
    classSize: (length) => 2 ** classOf(length),
    trim: () => {
      const dropped = retained
      free.length = 0
      retained = 0
      return dropped
    },
    stats: () => ({ budgetBytes, heldBytes: held, retainedBytes: retained, peakBytes: peak, waiting: queue.length, takes })
  }
}
