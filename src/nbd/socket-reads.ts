import type * as net from "node:net"

// Node hands every socket read to JavaScript in a freshly allocated 64 KiB buffer. At
// NBD write speeds (≈1 GB/s of WRITE payload) that churn is counted as external memory
// and triggers a full mark-compact every few tens of MB: measured here, it tripled the
// server's CPU per GiB written. `net.connect({ onread })` makes Node read into buffers
// the caller chooses instead, but that option is not offered for sockets a server
// accepts. This switches an accepted socket to the same mode through the fields `onread`
// with a buffer function sets (Node 20's net.js: `kBuffer`, `kBufferCb`, `kBufferGen`,
// `handle.useUserBuffer`; stream_base_commons.js calls `kBufferGen` after every read and
// the C++ side reads next into the buffer it returns). It reports false, leaving the
// socket untouched, when this Node does not have them; the caller then uses 'data'.
//
// `next()` picks where the next read lands: the shared buffer, or (for a WRITE payload)
// straight into the request's own buffer, which saves copying every payload once.
// Consequence for the caller: a chunk in the shared buffer is overwritten by the next
// read of any socket sharing it, so everything kept past the callback must be copied.

type Reader = (chunk: Buffer) => void

export const readIntoSharedBuffer = (socket: net.Socket, shared: Buffer, onChunk: Reader, next: () => Buffer): boolean => {
  const symbols = Object.getOwnPropertySymbols(socket)
  const kBuffer = symbols.find((s) => s.description === "kBuffer")
  const kBufferCb = symbols.find((s) => s.description === "kBufferCb")
  const kBufferGen = symbols.find((s) => s.description === "kBufferGen")
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } })._handle
  if (kBuffer === undefined || kBufferCb === undefined || kBufferGen === undefined || typeof handle?.useUserBuffer !== "function") return false
  const fields = socket as unknown as Record<symbol, unknown>
  if (fields[kBuffer] !== null || fields[kBufferCb] !== null || fields[kBufferGen] !== null) return false
  fields[kBuffer] = shared
  fields[kBufferCb] = (nread: number, buf: Buffer) => {
    onChunk(buf.subarray(0, nread))
  }
  fields[kBufferGen] = next
  handle.useUserBuffer(shared)
  return true
}
