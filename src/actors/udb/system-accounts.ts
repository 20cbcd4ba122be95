import { Context, Effect, Layer } from "effect"
import { readFile } from "node:fs/promises"

// Logins the UDB refuses because the UDB node's own passwd gives them a system uid
// (spec udb.md §1: 0–999 or 60000–65533, e.g. `http`, `nobody`).

export const isSystemUid = (uid: number): boolean => uid < 1000 || (uid >= 60000 && uid <= 65533)

/** login → uid of the system accounts in a passwd text; malformed lines are ignored here. */
export const systemAccounts = (passwdText: string): ReadonlyMap<string, number> => {
  const out = new Map<string, number>()
  for (const line of passwdText.split("\n")) {
    const f = line.split(":")
    if (f.length < 4 || !/^[0-9]+$/.test(f[2]!)) continue
    const uid = Number(f[2])
    if (isSystemUid(uid)) out.set(f[0]!, uid)
  }
  return out
}

export class SystemAccounts extends Context.Tag("prolo/udb/SystemAccounts")<
  SystemAccounts,
  {
    /** Current system accounts (re-read each time: the file is small and may change). */
    readonly load: Effect.Effect<ReadonlyMap<string, number>>
  }
>() {
  /** From a passwd file; an unreadable file counts as "no system accounts" with a warning. */
  static readonly fromFile = (file: string): Layer.Layer<SystemAccounts> =>
    Layer.succeed(SystemAccounts, {
      load: Effect.tryPromise(() => readFile(file, "utf8")).pipe(
        Effect.map(systemAccounts),
        Effect.catchAll((e) =>
          Effect.logWarning(`cannot read ${file} for system accounts: ${String(e.error)}`).pipe(Effect.as(new Map<string, number>()))
        )
      )
    })

  static readonly fixed = (accounts: ReadonlyMap<string, number>): Layer.Layer<SystemAccounts> =>
    Layer.succeed(SystemAccounts, { load: Effect.succeed(accounts) })
}
