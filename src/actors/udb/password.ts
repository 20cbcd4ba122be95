import { randomInt } from "node:crypto"

// Passwords as `pwgen -cnB <len>` would have them (at least one capital, at least one digit,
// none of pwgen's ambiguous characters), drawn uniformly from a CSPRNG instead of pwgen's
// pronounceable generator.

const AMBIGUOUS = new Set("B8G6I1l0OQDS5Z2")
const keep = (chars: string): string => [...chars].filter((c) => !AMBIGUOUS.has(c)).join("")

export const LOWER = keep("abcdefghijklmnopqrstuvwxyz")
export const UPPER = keep("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
export const DIGITS = keep("0123456789")
export const PASSWORD_ALPHABET = `${LOWER}${UPPER}${DIGITS}`

export const MIN_PASSWORD_LENGTH = 2
export const MAX_PASSWORD_LENGTH = 64

const hasUpper = (p: string): boolean => [...p].some((c) => UPPER.includes(c))
const hasDigit = (p: string): boolean => [...p].some((c) => DIGITS.includes(c))

/** A fresh password of `length` characters; the caller validates `length` (2–64). */
export const generatePassword = (length: number): string => {
  // Rejection sampling keeps the distribution uniform over the passwords that satisfy the rules.
  for (;;) {
    let p = ""
    for (let i = 0; i < length; i++) p += PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)]
    if (hasUpper(p) && hasDigit(p)) return p
  }
}
