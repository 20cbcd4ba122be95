// The time-auth message of a transfer request: a token opens exactly one home (login), at
// one fencing generation, on one source HFS (its IP: each HFS id has its own address). A
// token captured on the LAN cannot open another home, another generation (after a new
// grant), or the same home on another HFS. The port is left out so that a relay on the
// source's own address (tests, a port change) does not matter.

/** `::ffff:10.0.0.1` (an IPv4 peer seen by a dual-stack socket) is `10.0.0.1`. */
export const plainAddress = (address: string): string => (address.startsWith("::ffff:") ? address.slice(7) : address)

export const transferMessage = (login: string, generation: number, sourceHost: string): string =>
  `hfs-transfer ${login} ${generation} ${plainAddress(sourceHost)}`
