// The contract between the NBD protocol server (handshake, transmission) and the
// storage behind one export. The data path uses plain callbacks/promises on caller
// owned buffers: the server reads into and writes from pooled, reused buffers, and a
// per-request Effect would cost more than the I/O on small requests.

// One run of the export as reported by BLOCK_STATUS (base:allocation).
export interface Extent {
  readonly length: number
  // NBD_STATE_HOLE: not allocated in the backing file.
  readonly hole: boolean
  // NBD_STATE_ZERO: reads as zeroes.
  readonly zero: boolean
}

export interface ExportBackend {
  readonly size: number
  readonly readOnly: boolean
  // True only when every connection to this export shares one backing file, so a FLUSH
  // on one connection makes the writes of all connections durable (NBD_FLAG_CAN_MULTI_CONN).
  readonly multiConn: boolean
  readonly canTrim: boolean
  readonly canZero: boolean
  readonly canFastZero: boolean
  // Reads exactly `length` bytes at `offset` into `buf[0..length)`.
  read(buf: Buffer, length: number, offset: number): Promise<void>
  // Writes `buf[0..length)` at `offset`; with `fua` the data is durable when it resolves.
  write(buf: Buffer, length: number, offset: number, fua: boolean): Promise<void>
  flush(): Promise<void>
  trim(offset: number, length: number, fua: boolean): Promise<void>
  // `mayTrim` false = NBD_CMD_FLAG_NO_HOLE; `fast` = NBD_CMD_FLAG_FAST_ZERO (reject when slow).
  zero(offset: number, length: number, opts: { readonly mayTrim: boolean; readonly fast: boolean; readonly fua: boolean }): Promise<void>
  // Prefetch hint (NBD_CMD_CACHE).
  cache(offset: number, length: number): Promise<void>
  // Allocation map from `offset`: contiguous, in order, covering at least the first
  // byte; may stop before offset+length (the client asks again), and the last extent may
  // run past it (never past the export end).
  extents(offset: number, length: number): Promise<ReadonlyArray<Extent>>
  close(): Promise<void>
}

// Errors a backend raises carry the errno the NBD reply should send; anything else
// thrown by a backend is answered with EIO.
export type BackendErrno = "EIO" | "EPERM" | "ENOSPC" | "EINVAL" | "ENOTSUP"
export interface BackendFailure extends Error {
  readonly nbdErrno: BackendErrno
}
export const backendFailure = (nbdErrno: BackendErrno, message: string): BackendFailure =>
  Object.assign(new Error(message), { nbdErrno })
export const isBackendFailure = (u: unknown): u is BackendFailure =>
  u instanceof Error && typeof (u as { nbdErrno?: unknown }).nbdErrno === "string"
