// The messages between hash-pool.ts (the event loop) and its threads (hash-worker.ts). Slots
// are posted once (Control); a request is then four numbers and a reply two (or four on a
// failure): nothing but small integers is cloned per window.

export const Op = { readHash: 1, verifyWrite: 2 } as const
export const Status = { ok: 0, mismatch: 1, failed: 2 } as const

/**
 * readHash: [op, slot, fd, frameStart] — the head of the frame (window-frame.ts: header,
 *   head, run table) is in the slot at frameStart; read the runs into the slot's payload,
 *   write W into the head. Reply [slot, ok] or [slot, failed, errno name, message].
 * verifyWrite: [op, slot, bodyLength, fd] — the slot holds a window frame's body (checked by
 *   frames.ts); compute W, compare it with the frame's; write the runs to fd only if they
 *   match. Reply [slot, ok | mismatch] or [slot, failed, errno name, message].
 */
export type Request = readonly [op: number, slot: number, a: number, b: number]
export type Reply = readonly [slot: number, status: number, code?: string, message?: string]
export type Control = { readonly register: number; readonly buffer: SharedArrayBuffer } | { readonly unregister: number }
