import type * as net from "node:net"

// Node hands every socket read to JavaScript in a freshly allocated 64 KiB buffer. At
// NBD write speeds (≈1 GB/s of WRITE payload) that churn is counted as external memory
// and triggers a full mark-compact every few tens of MB: measured here, it tripled the
// server's CPU per GiB written. `net.connect({ onread })` makes Node read into one reused
// buffer instead, but that option is not offered for sockets a server accepts. This
// switches an accepted socket to the same mode through the fields `onread` sets (Node
// 20's net.js: `kBuffer`, `kBufferCb`, `handle.useUserBuffer`), and reports false, leaving
// the socket untouched, when this Node does not have them; the caller then uses 'data'.
//
// Consequence for the caller: `onChunk`'s buffer is overwritten by the next read of any
// socket sharing it, so everything kept past the callback must be copied.

type Reader = (chunk: Buffer) => void

export const readIntoSharedBuffer = (socket: net.Socket, shared: Buffer, onChunk: Reader): boolean => {
  const symbols = Object.getOwnPropertySymbols(socket)
  const kBuffer = symbols.find((s) => s.description === "kBuffer")
  const kBufferCb = symbols.find((s) => s.description === "kBufferCb")
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } })._handle
  if (kBuffer === undefined || kBufferCb === undefined || typeof handle?.useUserBuffer !== "function") return false
  const fields = socket as unknown as Record<symbol, unknown>
  if (fields[kBuffer] !== null || fields[kBufferCb] !== null) return false
  fields[kBuffer] = shared
  fields[kBufferCb] = (nread: number, buf: Buffer) => {
    onChunk(buf.subarray(0, nread))
  }
  handle.useUserBuffer(shared)
  return true
}
