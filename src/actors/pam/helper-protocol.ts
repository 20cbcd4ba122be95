import { Either } from "effect"
import type { PamRequest } from "./run-stage.js"

// The login helper's socket protocol, spoken by bin/prolo-pam (a shell script: printf and socat):
//   request   PAM_TYPE \0 PAM_USER \0 PAM_SERVICE \0 PAM_RHOST \0   (environment values cannot
//             hold a NUL, so no value can forge a field)
//   answer    "|<greeter line>\n" for each line, then "=<exit status>\n", then the helper closes.
// A greeter line never holds a newline (each is cut into several) nor starts the status.

/** Bytes a request may take; pam_exec's values are short (a login, a service, a host name). */
export const MAX_REQUEST_BYTES = 4096
const FIELDS = 4

/**
 * The request in `bytes` once all four fields arrived: Right(request), Right(undefined) while
 * more bytes are needed, Left(why) when the bytes can never be a request.
 */
export const parseRequest = (bytes: Buffer): Either.Either<PamRequest | undefined, string> => {
  if (bytes.length > MAX_REQUEST_BYTES) return Either.left(`request longer than ${MAX_REQUEST_BYTES} bytes`)
  const fields: Array<string> = []
  let start = 0
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0) continue
    fields.push(bytes.subarray(start, i).toString("utf8"))
    start = i + 1
    if (fields.length === FIELDS) {
      if (start !== bytes.length) return Either.left("bytes after the four fields of the request")
      const [stage, user, service, rhost] = fields as [string, string, string, string]
      return Either.right({ stage, user, service, rhost })
    }
  }
  return Either.right(undefined)
}

/** The request's bytes (what bin/prolo-pam's printf sends; tests). */
export const encodeRequest = (r: PamRequest): Buffer => Buffer.from(`${r.stage}\0${r.user}\0${r.service}\0${r.rhost}\0`, "utf8")

/** One greeter line as sent: control characters out, one "|…\n" per line of `text`. */
export const encodeLine = (text: string): string =>
  text
    .split(/\r?\n/)
    .map((l) => `|${l.replace(/[\u0000-\u001f\u007f]/g, " ")}\n`)
    .join("")

export const encodeStatus = (code: number): string => `=${code}\n`
