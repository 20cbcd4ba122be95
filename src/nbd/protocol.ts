// NBD wire constants (NetworkBlockDevice/nbd doc/proto.md). Numbers only: the phases
// (handshake.ts, transmission.ts) decide what to do with them.

export const NBDMAGIC = Buffer.from("NBDMAGIC", "latin1")
export const IHAVEOPT = Buffer.from("IHAVEOPT", "latin1")
export const OPTION_REPLY_MAGIC = Buffer.from([0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9])
export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef

// Handshake flags (server) and client flags.
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0
export const CLIENT_FLAG_NO_ZEROES = 1 << 1
export const KNOWN_CLIENT_FLAGS = CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11
} as const

const ERR = 0x80000000
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: ERR + 1,
  ERR_POLICY: ERR + 2,
  ERR_INVALID: ERR + 3,
  ERR_PLATFORM: ERR + 4,
  ERR_TLS_REQD: ERR + 5,
  ERR_UNKNOWN: ERR + 6,
  ERR_SHUTDOWN: ERR + 7,
  ERR_BLOCK_SIZE_REQD: ERR + 8,
  ERR_TOO_BIG: ERR + 9
} as const

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const

// Transmission flags.
export const TF = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11
} as const

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7
} as const

export const CmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4
} as const

export const ReplyFlag = { DONE: 1 } as const
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001
} as const

export const Errno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108
} as const
export type ErrnoName = keyof typeof Errno

export const STATE_HOLE = 1 << 0
export const STATE_ZERO = 1 << 1
export const BASE_ALLOCATION = "base:allocation"
// The one meta context we serve; its id is fixed because it is unique per connection.
export const BASE_ALLOCATION_ID = 1

export const REQUEST_HEADER_LENGTH = 28
export const OPTION_HEADER_LENGTH = 16
