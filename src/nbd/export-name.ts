// Export names on the wire carry an optional generation: `NAME@GEN`.
//
//   alice      the export `alice` at whatever generation is current when the client connects
//   alice@7    the export `alice` only if its current generation is exactly 7
//
// GEN is a decimal integer without sign or leading zeros (0 ≤ GEN ≤ 2^53-1). Export names
// themselves may not contain `@`, so the split is unambiguous. The kernel client selects a
// generation with `nbd-client -N alice@7`; a client holding a stale generation is refused
// instead of silently writing to a home that has moved on (see exports.ts).

export type WireName =
  | { readonly _tag: "Name"; readonly name: string; readonly generation: number | undefined }
  | { readonly _tag: "Invalid"; readonly reason: string }

const GENERATION = /^(0|[1-9][0-9]*)$/

export const parseWireName = (raw: string): WireName => {
  const at = raw.lastIndexOf("@")
  if (at < 0) return { _tag: "Name", name: raw, generation: undefined }
  const name = raw.slice(0, at)
  const gen = raw.slice(at + 1)
  if (name.includes("@")) return { _tag: "Invalid", reason: "export names contain at most one '@'" }
  if (!GENERATION.test(gen)) return { _tag: "Invalid", reason: `bad generation ${JSON.stringify(gen)} (expected NAME@<decimal>)` }
  const generation = Number(gen)
  if (!Number.isSafeInteger(generation)) return { _tag: "Invalid", reason: `generation ${gen} is too large` }
  return { _tag: "Name", name, generation }
}

// Why `name` cannot be an export name, or undefined when it can.
export const exportNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "the name is empty"
  if (name.includes("@")) return "'@' is reserved for the generation suffix (NAME@GEN)"
  if (name.includes("\0")) return "the name contains a NUL byte"
  if (Buffer.byteLength(name, "utf8") > 4096) return "the name is longer than 4096 bytes"
  return undefined
}
