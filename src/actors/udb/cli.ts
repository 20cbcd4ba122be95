import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Either, Option, Stream } from "effect"
import { readFile } from "node:fs/promises"
import { type Group, GROUPS, type PublicUser, UDB_SERVICE, UdbRpcs } from "../../protocols/udb.js"
import { configOption, nodeOption } from "../../runtime/cli-client-options.js"
import { filterArgs, withRpcClient } from "../../runtime/cli-run.js"
import { table } from "../../runtime/cli-table.js"
import { decodeUtf8File } from "./import-file.js"

// `prolo udb …`: the original UDB management commands (batchimport, jsonimport, pwdsheetdata,
// usermod) plus a listing, over the node's rpc endpoint with `udb-client-auth.yml`'s secret.
// Any failure is one line on stderr and exit status 2.

const udb = Command.make("udb", { node: nodeOption, config: configOption })

const type = Options.choice("type", GROUPS).pipe(Options.withDefault("user" as Group), Options.withDescription("group of the users"))
const pwdlen = Options.integer("pwdlen").pipe(Options.withDefault(8), Options.withDescription("length of generated passwords"))

const client = withRpcClient({ command: "udb", profile: "udb-client-auth", group: UdbRpcs, service: UDB_SERVICE })

/** Runs `body` with a UDB client; any failure becomes one line on stderr and exit status 2. */
const withClient = <A>(needsSecret: boolean, body: Parameters<typeof client<A>>[2]) =>
  Effect.flatMap(udb, (where) => client(where, needsSecret, body))

// Bytes that are not UTF-8 are refused with their line: decoding them would store U+FFFD.
const readText = (file: string) =>
  Effect.tryPromise({
    try: () => readFile(file),
    catch: (e) => ({ message: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}` })
  }).pipe(Effect.flatMap((bytes) => Either.match(decodeUtf8File(file, bytes), { onLeft: (message) => Effect.fail({ message }), onRight: Effect.succeed })))

/** `\r`-rewritten progress on stderr, only when it is a terminal (logs and pipes stay clean). */
export const progressLine = (done: number, total: number): string => {
  const width = 30
  const filled = total === 0 ? width : Math.round((done / total) * width)
  return `\rimporting [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total}`
}

const importCmd = Command.make(
  "import",
  {
    file: Options.file("file").pipe(Options.withDescription("one `First name<TAB>Last name` per line, or logins with --logins")),
    type,
    pwdlen,
    logins: Options.boolean("logins").pipe(Options.withDescription("one login per line instead of names")),
    passwords: Options.boolean("passwords").pipe(Options.withDescription("with --logins: lines are login:password")),
    update: Options.boolean("update").pipe(Options.withDescription("update users already in the database (keeps their passwords)")),
    ignore: Options.boolean("ignore").pipe(Options.withDescription("skip users already in the database")),
    newPasswords: Options.boolean("new-passwords").pipe(Options.withDescription("with --update: give updated users fresh passwords"))
  },
  (o) =>
    withClient(true, (client) =>
      Effect.gen(function* () {
        if (o.passwords && !o.logins) return yield* Effect.fail({ message: "--passwords needs --logins (lines login:password)" })
        const text = yield* readText(o.file)
        const tty = process.stderr.isTTY === true
        let shown = false
        yield* client
          .importUsers({
            file: o.file,
            text,
            format: o.logins ? "logins" : "names",
            passwords: o.passwords,
            group: o.type,
            passwordLength: o.pwdlen,
            update: o.update,
            ignore: o.ignore,
            newPasswords: o.newPasswords
          })
          .pipe(
            Stream.runForEach((event) =>
              Effect.gen(function* () {
                if (event._tag === "Progress") {
                  if (tty) {
                    shown = true
                    process.stderr.write(progressLine(event.done, event.total))
                  }
                  return
                }
                if (shown) process.stderr.write("\n")
                yield* Console.log(event.lines.join("\n"))
              })
            ),
            Effect.ensuring(Effect.sync(() => void (shown && process.stderr.write("\n"), (shown = false))))
          )
      })
    )
).pipe(Command.withDescription("import users from a file (the original batchimport), all or nothing"))

const jsonImport = Command.make(
  "json-import",
  { file: Args.file({ name: "FILE" }).pipe(Args.withDescription("JSON array of {id, username, first_name, last_name, password?}")), type, pwdlen },
  (o) =>
    withClient(true, (client) =>
      Effect.gen(function* () {
        const text = yield* readText(o.file)
        const lines = yield* client.importJson({ file: o.file, text, group: o.type, passwordLength: o.pwdlen })
        yield* Console.log(lines.join("\n"))
      })
    )
).pipe(Command.withDescription("import users with their ids from JSON (the original jsonimport)"))

/** `First Last<TAB>login<TAB>password` per user, sorted by login (the original pwdsheetdata). */
export const pwdsheetLines = (users: ReadonlyArray<{ firstname: string; lastname: string; login: string; password: string }>): string =>
  [...users]
    .sort((a, b) => (a.login < b.login ? -1 : a.login > b.login ? 1 : 0))
    .map((u) => `${u.firstname} ${u.lastname}\t${u.login}\t${u.password}`)
    .join("\n")

const pwdsheet = Command.make("pwdsheet", { type }, (o) =>
  withClient(true, (client) =>
    Effect.gen(function* () {
      const users = yield* client.query_private({ filters: { group: o.type } })
      if (users.length > 0) yield* Console.log(pwdsheetLines(users))
    })
  )
).pipe(Command.withDescription("password sheet data of a group: First Last<TAB>login<TAB>password"))

const usermod = Command.make(
  "usermod",
  {
    login: Args.text({ name: "LOGIN" }),
    sshKeyFile: Options.optional(Options.file("ssh-pubkey-file").pipe(Options.withDescription("file holding the user's SSH public key"))),
    password: Options.optional(Options.text("password").pipe(Options.withDescription("the new password")))
  },
  (o) =>
    withClient(true, (client) =>
      Effect.gen(function* () {
        if (Option.isNone(o.sshKeyFile) && Option.isNone(o.password)) {
          return yield* Effect.fail({ message: "nothing to change: give --ssh-pubkey-file and/or --password" })
        }
        if (Option.isSome(o.sshKeyFile)) {
          const key = (yield* readText(o.sshKeyFile.value)).trim()
          const user = yield* client.setSshKey({ login: o.login, ssh_key: key })
          yield* Console.log(`Set public ssh key of ${user.login} to ${user.ssh_key ?? ""}`)
        }
        if (Option.isSome(o.password)) {
          const user = yield* client.setPassword({ login: o.login, password: o.password.value })
          yield* Console.log(`Changed password of ${user.login} to ${user.password}`)
        }
      })
    )
).pipe(Command.withDescription("set a user's SSH key and/or password (the original usermod)"))

export const userTable = (users: ReadonlyArray<PublicUser>): string =>
  table(
    ["UID", "LOGIN", "GROUP", "FIRSTNAME", "LASTNAME", "SHELL", "SSH KEY"],
    users.map((u) => [String(u.uid), u.login, u.group, u.firstname, u.lastname, u.shell, u.ssh_key === null ? "" : "yes"])
  )

const list = Command.make(
  "list",
  {
    filters: Args.text({ name: "FIELD=VALUE" }).pipe(
      Args.withDescription("filters as the original query, e.g. group=root uid__gte=11000"),
      Args.repeated
    )
  },
  (o) =>
    withClient(false, (client) =>
      Effect.gen(function* () {
        // No list splitting here: the server reads `group__in=orga,root` as prolorpc sends it.
        const filters = yield* filterArgs(o.filters)
        yield* Console.log(userTable(yield* client.query({ filters })))
      })
    )
).pipe(Command.withDescription("print users as an aligned table (no passwords)"))

export const udbCommand = udb.pipe(
  Command.withDescription("the user database: import users, password sheets, usermod, list"),
  Command.withSubcommands([importCmd, jsonImport, pwdsheet, usermod, list])
)
