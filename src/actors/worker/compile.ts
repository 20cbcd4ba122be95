import * as path from "node:path"
import { Effect } from "effect"
import { type CompileResult, type CompileTask, ExecutorFailure } from "../../protocols/cluster-task.js"
import { ArchiveRejected, readTgz, writeTgz } from "./archive.js"
import { jailDir, readTree, taskDir, writeEntries } from "./box.js"
import type { ExecutorConfig } from "./config.js"
import { runJailed, type SandboxEnv } from "./sandbox/run.js"

// A champion's compilation (the original compile-champion.sh, in a jail): the archive is
// checked in memory, unpacked into the box, the language's compiler runs inside the jail
// with the compile limits, and the box becomes `champion-compiled.tgz`. The log lists the
// files, indents the compiler's output and ends with the verdict, as the original's did.

/** How each `_lang` builds; what the game's client then loads. */
const languages = {
  c: {
    sources: (files: ReadonlyArray<string>) => files.filter((f) => f.endsWith(".c")),
    argv: (config: ExecutorConfig, sources: ReadonlyArray<string>) => [config.gcc, "-O2", "-std=gnu11", "-shared", "-fPIC", "-o", "champion.so", ...sources],
    product: "champion.so"
  },
  python: {
    sources: (files: ReadonlyArray<string>) => files.filter((f) => f.endsWith(".py")),
    argv: (config: ExecutorConfig, sources: ReadonlyArray<string>) => [config.python, "-m", "py_compile", ...sources],
    product: "champion.py"
  }
} as const
type Language = keyof typeof languages
const isLanguage = (s: string): s is Language => Object.hasOwn(languages, s)

export const compileChampion = (config: ExecutorConfig, env: SandboxEnv, task: CompileTask): Effect.Effect<CompileResult, ExecutorFailure> =>
  Effect.gen(function* () {
    const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
    const base = { taskId: task.taskId, attempt: task.attempt, championId: task.championId }
    const finish = (r: Omit<CompileResult, "taskId" | "attempt" | "championId" | "durationMs">) =>
      Effect.map(Effect.clockWith((c) => c.currentTimeMillis), (now): CompileResult => ({ ...base, ...r, durationMs: now - started }))
    const refuse = (e: ArchiveRejected) => finish({ status: "error", rejected: e.problem, log: `${e.message}\n*** Compilation refused.\n` })

    const entries = readTgz(task.sources, { maxEntries: config.archive_max_entries, maxBytes: config.archive_max_bytes })
    if (entries instanceof ArchiveRejected) return yield* refuse(entries)
    const langEntry = entries.find((e) => e.path === "_lang" && e.type === "file")
    if (langEntry === undefined) return yield* refuse(new ArchiveRejected({ problem: "no_lang", message: "the archive has no _lang file naming its language" }))
    const lang = Buffer.from(langEntry.data).toString("utf8").trim()
    if (!isLanguage(lang)) {
      return yield* refuse(
        new ArchiveRejected({ problem: "unknown_language", message: `unknown language ${JSON.stringify(lang.slice(0, 40))} in _lang (this worker builds: ${Object.keys(languages).join(", ")})` })
      )
    }
    const language = languages[lang]
    const files = entries.filter((e) => e.type === "file").map((e) => e.path)
    const sources = language.sources(files)
    const listing = files.map((f) => `- ${f}\n`).join("")
    if (sources.length === 0) return yield* finish({ status: "error", log: `${listing}no ${lang} source file in the archive\n*** Compilation failed. Try again :)\n` })

    const dir = yield* taskDir(config.work_dir, `compile-${task.championId}-${task.attempt}`)
    const box = path.join(dir, "box")
    yield* jailDir(box, env.drop)
    yield* writeEntries(box, entries, env.drop)
    const out = yield* runJailed(env, { rw: [[box, "/box"]], ro: [], cwd: "/box", env: {}, limits: config.compile, argv: language.argv(config, sources) })
    if (!out.started) return yield* new ExecutorFailure({ taskId: task.taskId, attempt: task.attempt, message: `the compile jail did not start: ${out.stderr.trim()}` })
    const compilerLog = out.merged === "" ? "" : out.merged.replace(/^(?=.)/gm, "    ") + (out.merged.endsWith("\n") ? "" : "\n")
    const verdict = out.kill === undefined ? "" : `*** The compiler was stopped: ${out.kill} limit.\n`
    const product = entries.find((e) => e.path === language.product)
    const built = (yield* readTree(box, config.archive_max_bytes).pipe(Effect.either))
    const hasProduct = built._tag === "Right" && built.right.some((e) => e.path === language.product && e.type === "file")
    if (out.exitCode !== 0 || out.kill !== undefined || !hasProduct || (lang === "python" && product === undefined)) {
      const missing = out.exitCode === 0 && out.kill === undefined ? `${language.product} was not produced\n` : ""
      const tooBig = built._tag === "Left" ? `${built.left.message}\n` : ""
      return yield* finish({
        status: "error",
        log: `${listing}${compilerLog}${verdict}${missing}${tooBig}*** Compilation failed. Try again :)\n`,
        ...(out.kill === undefined ? {} : { kill: out.kill })
      })
    }
    return yield* finish({ status: "ready", compiled: writeTgz(built.right), log: `${listing}${compilerLog}Success!\n` })
  }).pipe(Effect.scoped)
