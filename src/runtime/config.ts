import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Effect, Layer, Schema } from "effect"
import * as path from "node:path"
import { parse as parseYaml, YAMLParseError } from "yaml"
import { describeParseError } from "./config-issue.js"

/** Directory holding the `<profile>.yml` files; the binary fills it from `--config` or `PROLO_CONFIG_DIR`. */
export class ConfigDir extends Context.Tag("prolo/ConfigDir")<ConfigDir, string>() {
  static readonly layer = (dir: string): Layer.Layer<ConfigDir> => Layer.succeed(ConfigDir, dir)
}

/**
 * A configuration problem an operator can fix from one line:
 * `etc/prologin/node.yml: database.port: expected an integer, got "abc"`.
 * `keyPath` is "" when the problem concerns the whole file (missing, not YAML).
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  file: Schema.String,
  keyPath: Schema.String,
  expected: Schema.String,
  message: Schema.String
}) {}

export const configError = (file: string, keyPath: string, expected: string, got?: string): ConfigError =>
  new ConfigError({
    file,
    keyPath,
    expected,
    message: `${file}: ${keyPath === "" ? "" : `${keyPath}: `}expected ${expected}${got === undefined ? "" : `, got ${got}`}`
  })

const PROFILE_NAME = /^[A-Za-z0-9_.-]+$/

export const profilePath = (dir: string, name: string): string => path.join(dir, `${name}.yml`)

const firstLine = (text: string): string => (text.split("\n", 1)[0] ?? "").trim().replace(/:$/, "")

/** Why a file could not be read, in a few words. */
export const fileProblem = (e: PlatformError): string => {
  if (e._tag === "SystemError") {
    if (e.reason === "NotFound") return "no such file"
    if (e.reason === "PermissionDenied") return "permission denied"
    return `${e.reason}: ${firstLine(e.description ?? e.message)}`
  }
  return firstLine(e.message)
}

/** Reads and parses `<ConfigDir>/<name>.yml` (an empty file reads as `{}`), without validating it. */
export const readProfile = (
  name: string
): Effect.Effect<unknown, ConfigError, ConfigDir | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const dir = yield* ConfigDir
    const file = profilePath(dir, name)
    if (!PROFILE_NAME.test(name) || name.startsWith(".")) {
      return yield* configError(file, "", "a profile name made of letters, digits, '.', '_' and '-'", JSON.stringify(name))
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((e) =>
        configError(
          file,
          "",
          "a readable YAML file (set --config or PROLO_CONFIG_DIR)",
          fileProblem(e)
        )
      )
    )
    const parsed = yield* Effect.try({
      try: () => parseYaml(text) as unknown,
      catch: (e) =>
        configError(file, "", "valid YAML", e instanceof YAMLParseError || e instanceof Error ? firstLine(e.message) : String(e))
    })
    return parsed === null || parsed === undefined ? {} : parsed
  })

/**
 * Loads profile `name` and validates it with `schema`. Every profile is validated the same
 * way: an unknown key is an error (a misspelt key must not silently leave its default).
 */
export const loadProfile = <A, I, R>(
  name: string,
  schema: Schema.Schema<A, I, R>
): Effect.Effect<A, ConfigError, ConfigDir | FileSystem.FileSystem | R> =>
  Effect.gen(function* () {
    const raw = yield* readProfile(name)
    const file = profilePath(yield* ConfigDir, name)
    return yield* Schema.decodeUnknown(schema, { onExcessProperty: "error" })(raw).pipe(
      Effect.mapError((error) => {
        const { keyPath, expected, got } = describeParseError(error)
        return configError(file, keyPath, expected, got)
      })
    )
  })
