// Sessions ended by their logout, so a copied cookie stops working at once (the cookie is
// signed and carries its expiry; without this it stayed valid until then). Keyed by the
// session's nonce, kept only until the session would have expired anyway: the set holds at
// most the logouts of the last `session_hours`. In the node's memory: a restart forgets them
// (as the original's cache-backed sessions), and each web node keeps its own.

export interface SessionRevocations {
  /** Ends the session `nonce`, which would otherwise expire at `expires`. */
  readonly revoke: (nonce: string, expires: number, now: number) => void
  readonly isRevoked: (nonce: string) => boolean
  readonly size: () => number
}

export const makeSessionRevocations = (): SessionRevocations => {
  const ended = new Map<string, number>()
  return {
    revoke: (nonce, expires, now) => {
      // prune on the write path: entries past their expiry are refused by the MAC check anyway
      for (const [n, e] of ended) if (e <= now) ended.delete(n)
      if (expires > now) ended.set(nonce, expires)
    },
    isRevoked: (nonce) => ended.has(nonce),
    size: () => ended.size
  }
}
