// JSON.parse accepts any nesting: a body of one million `[` costs ~290 MB of heap to parse
// (issue 17 item 2). Every JSON text from the network is scanned first, in one pass and no
// allocation, and refused when it nests deeper than its reader allows.

/** The depth at which `text` first nests deeper than `max`, or undefined if it never does. Strings are skipped. */
export const jsonTooDeep = (text: string, max: number): number | undefined => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: the next character is escaped
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return undefined
}

/** `JSON.parse`, refusing texts nested deeper than `max` with a message saying so. */
export const parseJsonBounded = (text: string, max: number): { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string } => {
  if (jsonTooDeep(text, max) !== undefined) return { ok: false, message: `JSON nested deeper than ${max} levels` }
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) }
  }
}
