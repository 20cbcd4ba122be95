import { createHmac, randomInt } from "node:crypto"
import { Redacted } from "effect"
import { encrypt, verify } from "unixcrypt"

// SHA-512-crypt (`$6$`) through the unixcrypt library; we only choose the salt.

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

/** Hashes remembered by a stable hasher; past it the memory starts over (recomputing gives the same hashes). */
const MEMORY = 20_000

/**
 * SHA-512-crypt with a salt derived from HMAC(key, login, password): the same user and password
 * always give the same hash (so /etc/shadow stays unchanged while a password does, on every
 * machine and across restarts of the hub), two users or two sites (keys) never share a salt.
 * A hash costs ~15 ms in JS, so each is remembered, keyed by that HMAC (no clear password kept).
 */
export const stableHasher = (key: Redacted.Redacted<string>) => {
  const known = new Map<string, string>()
  return (login: string, password: string): string => {
    const digest = createHmac("sha256", Redacted.value(key)).update(login).update("\0").update(password).digest()
    const id = digest.toString("base64")
    const cached = known.get(id)
    if (cached !== undefined) return cached
    let salt = ""
    for (let i = 0; i < SALT_LENGTH; i++) salt += SALT_ALPHABET[digest[i]! % SALT_ALPHABET.length]
    const hash = sha512Crypt(password, salt)
    if (known.size >= MEMORY) known.clear()
    known.set(id, hash)
    return hash
  }
}
