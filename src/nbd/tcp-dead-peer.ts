import type * as net from "node:net"
import { setsockoptInt, type SyscallError } from "./libc.js"

// A client whose machine died (power cut, kernel panic, cable pulled) sends no FIN nor RST: its
// NBD connection stays open, and with it the attach that keeps its home granted (a home with
// a client attached is never moved). TCP keepalive probes an idle connection and resets it
// after `count` unanswered probes; TCP_USER_TIMEOUT resets one whose sent data stays
// unacknowledged that long (keepalive does not probe while a reply is in flight, and the
// retransmission timeout alone takes ~15 minutes). Together: a dead peer is cut within
// idle + interval × count seconds, whatever the connection was doing.
//
// Node's setKeepAlive sets only the idle time (libuv 1.46 leaves the interval and count at
// the kernel's 75 s × 9), so the rest is set on the descriptor with setsockopt.

export interface DeadPeerTimeouts {
  /** Seconds of silence before the first probe. */
  readonly idleSeconds: number
  /** Seconds between probes. */
  readonly intervalSeconds: number
  /** Unanswered probes before the connection is reset. */
  readonly count: number
}

const IPPROTO_TCP = 6
const TCP_KEEPINTVL = 5
const TCP_KEEPCNT = 6
const TCP_USER_TIMEOUT = 18

/** The bound after which a dead peer's connection is reset, in seconds. */
export const deadPeerBound = (t: DeadPeerTimeouts) => t.idleSeconds + t.intervalSeconds * t.count

/** Arms `socket` against a dead peer; the error when the descriptor refused an option. */
export const armDeadPeer = (socket: net.Socket, t: DeadPeerTimeouts): SyscallError | string | undefined => {
  socket.setKeepAlive(true, Math.round(t.idleSeconds * 1000))
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (typeof fd !== "number" || fd < 0) return "no descriptor"
  return (
    setsockoptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, Math.max(1, Math.round(t.intervalSeconds))) ??
    setsockoptInt(fd, IPPROTO_TCP, TCP_KEEPCNT, Math.max(1, t.count)) ??
    setsockoptInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, Math.round(deadPeerBound(t) * 1000))
  )
}
