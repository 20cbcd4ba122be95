import { Effect, Mailbox, Stream } from "effect"
import { type ImportEvent, UdbRpcs } from "../../protocols/udb.js"
import { importJson, importUsers } from "./import.js"
import { Udb } from "./service.js"

export const UdbHandlers = UdbRpcs.toLayer(
  Effect.gen(function* () {
    const udb = yield* Udb
    const context = yield* Effect.context<Effect.Effect.Context<ReturnType<typeof importUsers>>>()
    return UdbRpcs.of({
      query: ({ filters }) => udb.query(filters),
      query_private: ({ filters }) => udb.queryPrivate(filters),
      createUser: (user) => udb.create(user),
      updateUser: ({ login, changes }) => udb.update(login, changes),
      deleteUser: ({ login }) => udb.remove(login),
      setPassword: ({ login, password }) => udb.setPassword(login, password),
      setSshKey: ({ login, ssh_key }) => udb.setSshKey(login, ssh_key),
      importUsers: (r) =>
        Stream.unwrapScoped(
          Effect.gen(function* () {
            const events = yield* Mailbox.make<ImportEvent, Effect.Effect.Error<ReturnType<typeof importUsers>>>()
            yield* importUsers(
              r.file,
              r.text,
              {
                format: r.format === "names" ? { kind: "names" } : { kind: "logins", passwords: r.passwords },
                group: r.group,
                update: r.update,
                ignore: r.ignore,
                newPasswords: r.newPasswords,
                passwordLength: r.passwordLength
              },
              // One per chunk of rows (import.ts), so about 20 for a 1000-line file.
              (done, total) => Effect.asVoid(events.offer({ _tag: "Progress", done, total }))
            ).pipe(
              Effect.flatMap((lines) => events.offer({ _tag: "Done", lines })),
              Mailbox.into(events),
              Effect.provide(context),
              Effect.forkScoped
            )
            return Mailbox.toStream(events)
          })
        ),
      importJson: (r) => importJson(r.file, r.text, { group: r.group, passwordLength: r.passwordLength }).pipe(Effect.provide(context))
    })
  })
)
