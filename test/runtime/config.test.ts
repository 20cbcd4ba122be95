import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ConfigDir, ConfigError, loadProfile } from "../../src/runtime/config.js"
import { PresenceSubProfile, SharedSecretProfile } from "../../src/runtime/profiles.js"
import { RegistrationProfile } from "../../src/actors/mdb/registration-gate.js"

const NodeProfile = Schema.Struct({
  restarts: Schema.Int,
  restartWindowSeconds: Schema.Number,
  database: Schema.Struct({ url: Schema.optional(Schema.String), port: Schema.optional(Schema.Int) })
})

// A throwaway config dir holding `files`, removed when the test's scope closes.
const withDir = (files: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-config-"))
      for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
        fs.writeFileSync(path.join(dir, name), text)
      }
      return dir
    }),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

const load = <A, I, R>(dir: string, name: string, schema: Schema.Schema<A, I, R>) =>
  loadProfile(name, schema).pipe(Effect.provide(Layer.merge(ConfigDir.layer(dir), NodeFileSystem.layer)))

const failure = <A, I, R>(dir: string, name: string, schema: Schema.Schema<A, I, R>) =>
  load(dir, name, schema).pipe(Effect.flip)

describe("config", () => {
  it.scoped("loads every shipped example profile", () =>
    Effect.gen(function* () {
      const dir = "etc/prologin"
      const node = yield* load(dir, "node", NodeProfile)
      expect(node).toEqual({ restarts: 5, restartWindowSeconds: 10, database: {} })
      const secrets = new Map<string, string>()
      for (const name of ["mdbsync-pub", "mdbsync-sub", "udb-client-auth", "udbsync-pub", "udbsync-sub", "udbsync-shadow", "presencesync-pub", "mdb-server"]) {
        const profile = yield* load(dir, name, SharedSecretProfile)
        expect(Redacted.value(profile.shared_secret)).toMatch(/^dev-[a-z]+-secret$/)
        secrets.set(name, Redacted.value(profile.shared_secret))
      }
      const sub = yield* load(dir, "presencesync-sub", PresenceSubProfile)
      expect(sub.timeout).toBe(30)
      expect(sub.url).toBe("http://presencesync/")
      secrets.set("presencesync-sub", Redacted.value(sub.shared_secret))
      // Unlike the original's production values, no topic's publishing secret reads, and the udb
      // topic's three secrets (publish, read, read hashes) all differ.
      for (const [a, b] of [
        ["mdbsync-pub", "mdbsync-sub"],
        ["udbsync-pub", "udbsync-sub"],
        ["udbsync-pub", "udbsync-shadow"],
        ["udbsync-sub", "udbsync-shadow"],
        ["presencesync-pub", "presencesync-sub"]
      ] as const) {
        expect(secrets.get(a), `${a} vs ${b}`).not.toBe(secrets.get(b))
      }
      // Self-registration: on in this (--layer all) example only, and rate-limited.
      expect(yield* load(dir, "mdb-registration", RegistrationProfile)).toEqual({ enabled: true, per_source_per_minute: 6, per_minute: 120 })
      expect(yield* load(yield* withDir({ "mdb-registration.yml": "{}\n" }), "mdb-registration", RegistrationProfile)).toMatchObject({ enabled: false })
    })
  )

  it.scoped("names file, key path and expectation in one line", () =>
    Effect.gen(function* () {
      const dir = yield* withDir({ "node.yml": "restarts: 5\nrestartWindowSeconds: 10\ndatabase:\n  port: abc\n" })
      const e = yield* failure(dir, "node", NodeProfile)
      expect(e).toBeInstanceOf(ConfigError)
      expect(e.file).toBe(path.join(dir, "node.yml"))
      expect(e.keyPath).toBe("database.port")
      expect(e.expected).toBe("an integer")
      expect(e.message).toBe(`${dir}/node.yml: database.port: expected an integer, got "abc"`)
      expect(e.message).not.toContain("\n")
    })
  )

  it.scoped("reports missing keys, wrong types, non-integers and the wrong shape", () =>
    Effect.gen(function* () {
      const dir = yield* withDir({
        "a.yml": "restartWindowSeconds: 10\ndatabase: {}\n",
        "b.yml": "restarts: 2.5\nrestartWindowSeconds: 10\ndatabase: {}\n",
        "c.yml": "restarts: 5\nrestartWindowSeconds: ten\ndatabase: {}\n",
        "d.yml": "- 1\n- 2\n",
        "e.yml": "restarts: 5\nrestartWindowSeconds: 10\ndatabase:\n"
      })
      expect((yield* failure(dir, "a", NodeProfile)).message).toBe(`${dir}/a.yml: restarts: expected an integer, got nothing`)
      expect((yield* failure(dir, "b", NodeProfile)).message).toBe(`${dir}/b.yml: restarts: expected an integer, got 2.5`)
      expect((yield* failure(dir, "c", NodeProfile)).message).toBe(
        `${dir}/c.yml: restartWindowSeconds: expected a number, got "ten"`
      )
      expect((yield* failure(dir, "d", NodeProfile)).message).toBe(`${dir}/d.yml: expected a mapping, got [1,2]`)
      expect((yield* failure(dir, "e", NodeProfile)).message).toBe(`${dir}/e.yml: database: expected a mapping, got null`)
    })
  )

  it.scoped("reports a missing file and invalid YAML in one line", () =>
    Effect.gen(function* () {
      const dir = yield* withDir({ "broken.yml": "a: [1, 2\nb: {\n", "dup.yml": "a: 1\na: 2\n" })
      const missing = yield* failure(dir, "nope", NodeProfile)
      expect(missing.message).toBe(
        `${dir}/nope.yml: expected a readable YAML file (set --config or PROLO_CONFIG_DIR), got no such file`
      )
      expect(missing.keyPath).toBe("")
      const broken = yield* failure(dir, "broken", NodeProfile)
      expect(broken.message).toMatch(new RegExp(`^${dir}/broken.yml: expected valid YAML, got .+line \\d+, column \\d+`))
      expect(broken.message).not.toContain("\n")
      const dup = yield* failure(dir, "dup", NodeProfile)
      expect(dup.message).toMatch(/dup\.yml: expected valid YAML, got Map keys must be unique/)
      const traversal = yield* failure(dir, "../etc/passwd", NodeProfile)
      expect(traversal.message).toContain("expected a profile name")
    })
  )

  it.scoped("secrets: inline or { file } relative to the config dir, trailing newline stripped", () =>
    Effect.gen(function* () {
      const abs = yield* withDir({ "abs-secret": "from-absolute\r\n" })
      const dir = yield* withDir({
        "inline.yml": "shared_secret: s3cret\nurl: http://mdbsync/\n",
        "rel.yml": "shared_secret: { file: secrets/mdbsync }\n",
        "abs.yml": `shared_secret:\n  file: ${abs}/abs-secret\n`,
        "secrets/mdbsync": "from-file\n\n"
      })
      const inline = yield* load(dir, "inline", SharedSecretProfile)
      expect(Redacted.value(inline.shared_secret)).toBe("s3cret")
      expect(inline.url).toBe("http://mdbsync/")
      expect(String(inline.shared_secret)).not.toContain("s3cret")
      expect(Redacted.value((yield* load(dir, "rel", SharedSecretProfile)).shared_secret)).toBe("from-file")
      expect(Redacted.value((yield* load(dir, "abs", SharedSecretProfile)).shared_secret)).toBe("from-absolute")
    })
  )

  it.scoped("secrets: unreadable file, empty value, wrong shape and unknown keys are ConfigErrors", () =>
    Effect.gen(function* () {
      const dir = yield* withDir({
        "gone.yml": "shared_secret: { file: secrets/gone }\n",
        "empty.yml": "shared_secret: { file: secrets/empty }\n",
        "blank.yml": 'shared_secret: ""\n',
        "num.yml": "shared_secret: 1234\n",
        "typo.yml": "shared_secret: x\nurl: http://a/\nsecret_key: y\n",
        "nosecret.yml": "url: http://a/\n",
        "secrets/empty": "\n"
      })
      const gone = yield* failure(dir, "gone", SharedSecretProfile)
      expect(gone.keyPath).toBe("shared_secret")
      expect(gone.message).toBe(
        `${dir}/gone.yml: shared_secret: expected a readable secret file, got ${dir}/secrets/gone (no such file)`
      )
      expect((yield* failure(dir, "empty", SharedSecretProfile)).message).toBe(
        `${dir}/empty.yml: shared_secret: expected a non-empty secret, got an empty file ${dir}/secrets/empty`
      )
      expect((yield* failure(dir, "blank", SharedSecretProfile)).message).toBe(
        `${dir}/blank.yml: shared_secret: expected a non-empty secret, got an empty string`
      )
      expect((yield* failure(dir, "num", SharedSecretProfile)).message).toBe(
        `${dir}/num.yml: shared_secret: expected a secret string or { file: path }, got 1234`
      )
      expect((yield* failure(dir, "typo", SharedSecretProfile)).message).toBe(
        `${dir}/typo.yml: secret_key: expected one of the keys url, shared_secret, got an unknown key`
      )
      expect((yield* failure(dir, "nosecret", SharedSecretProfile)).message).toBe(
        `${dir}/nosecret.yml: shared_secret: expected a secret string or { file: path }, got nothing`
      )
    })
  )
})
