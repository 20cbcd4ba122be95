import { createHash, randomInt } from "node:crypto"
import { encrypt, verify } from "unixcrypt"

// SHA-512-crypt (`$6$`) through the unixcrypt library; we only choose the salt, from a CSPRNG.

const SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
const SALT_LENGTH = 16

export const randomSalt = (): string => {
  let salt = ""
  for (let i = 0; i < SALT_LENGTH; i++) salt += SALT_ALPHABET[randomInt(SALT_ALPHABET.length)]
  return salt
}

export const sha512Crypt = (password: string, salt: string = randomSalt()): string => encrypt(password, `$6$${salt}`)

/** Only `$5$`/`$6$` hashes can be checked; anything else (MD5-crypt, `!`, `*`) reads as "does not match". */
export const verifyCrypt = (password: string, hash: string): boolean => {
  if (!hash.startsWith("$6$") && !hash.startsWith("$5$")) return false
  try {
    return verify(password, hash)
  } catch {
    return false
  }
}

/**
 * A verifier that remembers positive answers: a SHA-512-crypt check costs ~15 ms in JS,
 * and every regeneration checks every user, so without it 1000 users cost 15 s per event.
 * Keyed on the hash and a digest of the password, so no clear password is kept.
 */
export const memoizedVerifier = (check: (password: string, hash: string) => boolean = verifyCrypt) => {
  const known = new Set<string>()
  return (password: string, hash: string): boolean => {
    const key = `${hash}\0${createHash("sha256").update(password).digest("base64")}`
    if (known.has(key)) return true
    const ok = check(password, hash)
    if (ok) known.add(key)
    return ok
  }
}
