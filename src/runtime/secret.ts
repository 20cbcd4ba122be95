import { FileSystem } from "@effect/platform"
import { Effect, ParseResult, Redacted, Schema } from "effect"
import * as path from "node:path"
import { ConfigDir, fileProblem } from "./config.js"

// A secret is either inline (dev placeholders) or `{ file: path }` so that the YAML
// can be committed while the value lives in a root-only file. Relative paths are
// resolved against the config directory; trailing newlines (from `echo > file`) are dropped.
const SecretInput = Schema.Union(Schema.String, Schema.Struct({ file: Schema.String }))

export const Secret: Schema.Schema<
  Redacted.Redacted<string>,
  string | { readonly file: string },
  ConfigDir | FileSystem.FileSystem
> = Schema.transformOrFail(SecretInput, Schema.RedactedFromSelf(Schema.String), {
  strict: true,
  decode: (input, _options, ast) =>
    Effect.gen(function* () {
      if (typeof input === "string") {
        if (input === "") return yield* Effect.fail(new ParseResult.Type(ast, input, "a non-empty secret, got an empty string"))
        return Redacted.make(input)
      }
      const dir = yield* ConfigDir
      const fs = yield* FileSystem.FileSystem
      const file = path.resolve(dir, input.file)
      const text = yield* fs.readFileString(file).pipe(
        Effect.mapError(
          (e) =>
            new ParseResult.Type(
              ast,
              input,
              `a readable secret file, got ${file} (${fileProblem(e)})`
            )
        )
      )
      const value = text.replace(/[\r\n]+$/, "")
      if (value === "") return yield* Effect.fail(new ParseResult.Type(ast, input, `a non-empty secret, got an empty file ${file}`))
      return Redacted.make(value)
    }),
  encode: (secret) => ParseResult.succeed(Redacted.value(secret))
}).annotations({ description: "a secret string or { file: path }" })
