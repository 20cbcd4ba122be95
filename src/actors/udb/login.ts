import { LOGIN_PATTERN } from "../../protocols/udb.js"

// Login generation of the original batch import (spec udb.md §3).

/** Unicode NFKD, then drop every non-ASCII character ("Étienne" → "Etienne", "Łukasz" → "ukasz"). */
export const toAscii = (s: string): string => s.normalize("NFKD").replace(/[^\x00-\x7f]/g, "")

/** "Jean-Pierre" + "De La Fontaine" → "jpdelafontai": initials of the first-name parts, last name a–z cut to 10. */
export const baseLogin = (firstname: string, lastname: string): string => {
  const initials = toAscii(firstname)
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter((part) => part !== "")
    .map((part) => part[0])
    .join("")
  const last = toAscii(lastname).toLowerCase().replace(/[^a-z]/g, "").slice(0, 10)
  return `${initials}${last}`
}

export const isValidLogin = (login: string): boolean => LOGIN_PATTERN.test(login)

/**
 * The first of `base`, `base1`, `base2`, … that `isFree` accepts (never `root`).
 * Returns undefined when the suffix would push the login past the 31-character limit.
 */
export const firstFreeLogin = (base: string, isFree: (login: string) => boolean): string | undefined => {
  for (let n = 0; ; n++) {
    const candidate = n === 0 ? base : `${base}${n}`
    if (!isValidLogin(candidate)) return undefined
    if (candidate !== "root" && isFree(candidate)) return candidate
  }
}

/** Python's str.title(): upper-case the first letter of each run of letters, lower-case the rest. */
export const titleCase = (s: string): string =>
  s.toLowerCase().replace(/\p{L}+/gu, (word) => word.charAt(0).toUpperCase() + word.slice(1))
