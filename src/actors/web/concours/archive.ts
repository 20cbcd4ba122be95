import { gunzipSync } from "node:zlib"

// Just enough of tar to read a champion upload's `_lang` before storing it (the worker checks
// the whole archive again before compiling): gunzip, then walk the 512-byte headers.

export type ArchiveCheck = { readonly ok: true; readonly lang: string } | { readonly ok: false; readonly message: string }

const MAX_UNPACKED = 256 * 1024 * 1024

const text = (block: Uint8Array, start: number, length: number): string => {
  const slice = block.subarray(start, start + length)
  const end = slice.indexOf(0)
  return Buffer.from(end === -1 ? slice : slice.subarray(0, end)).toString("utf8")
}

/** The language named by the archive's top-level `_lang` file, or why there is none. */
export const championLanguage = (tgz: Uint8Array): ArchiveCheck => {
  let tar: Buffer
  try {
    tar = gunzipSync(tgz, { maxOutputLength: MAX_UNPACKED })
  } catch {
    return { ok: false, message: "the file is not a .tgz archive (gzip'd tar)" }
  }
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512)
    if (header.every((b) => b === 0)) break
    const name = text(header, 0, 100)
    const prefix = text(header, 345, 155)
    const size = parseInt(text(header, 124, 12).trim() || "0", 8)
    const type = String.fromCharCode(header[156] ?? 0)
    if (!Number.isSafeInteger(size) || size < 0) return { ok: false, message: "the archive is corrupt (bad entry size)" }
    const full = (prefix === "" ? name : `${prefix}/${name}`).replace(/^\.\//, "")
    if (full === "_lang" && (type === "0" || type === "\0")) {
      const lang = tar.subarray(offset + 512, offset + 512 + size).toString("utf8").trim()
      return lang === "" ? { ok: false, message: "the _lang file is empty: write the language in it (e.g. c)" } : { ok: true, lang }
    }
    offset += 512 + Math.ceil(size / 512) * 512
  }
  return { ok: false, message: "no _lang file at the top of the archive: add one naming the language (e.g. c)" }
}
