import { type Duration, Effect } from "effect"
import { spawn } from "node:child_process"

// The map validator (concours.yml `map_validator_script`): the map's contents on stdin, a
// bounded wait (the original: 2 s, on the Clock here), a non-zero exit refuses the map with
// what it printed on stderr. The process is killed when the wait ends.

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly message: string }

export const validateMap = (script: string, contents: string, timeout: Duration.DurationInput): Effect.Effect<Verdict> =>
  Effect.async<Verdict>((resume) => {
    const child = spawn(script, [], { stdio: ["pipe", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr = (stderr + c).slice(0, 4000)))
    child.stdin.on("error", () => undefined)
    child.stdin.end(contents)
    child.once("error", (e) => resume(Effect.succeed({ ok: false, message: `map validator cannot run: ${e.message}` })))
    child.once("exit", (code) =>
      resume(Effect.succeed(code === 0 ? { ok: true } : { ok: false, message: stderr.trim() === "" ? `map refused by the validator (exit ${code})` : stderr.trim() }))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(
    Effect.timeoutTo({
      duration: timeout,
      onSuccess: (v): Verdict => v,
      onTimeout: (): Verdict => ({ ok: false, message: "the map validator did not answer in time" })
    })
  )
