import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect } from "effect"
import { type Group, GROUPS, type PublicUser, type User } from "../../protocols/udb.js"
import { importUsers } from "../udb/import.js"
import type { UdbRepo } from "../udb/repo.js"
import { Udb } from "../udb/service.js"
import type { SystemAccounts } from "../udb/system-accounts.js"
import { field, type Form, formPost, page, seeOther } from "./guard.js"
import { Csrf, ErrorBox, htmlResponse, Layout, Notice } from "./html.js"
import type { Viewer } from "./viewer.js"
import { webRouter } from "./web-router.js"

// Users (the original's UDB Django admin): list with filters, import a file of names, the
// printable password sheet, and a user's ssh key and password. An orga edits users and orgas,
// never a root (nor sees a root's password): only roots edit roots.

export const mayEdit = (viewer: Viewer, target: { readonly group: Group }): boolean => target.group !== "root" || viewer.group === "root"

const ListPage = (props: { viewer: Viewer; users: ReadonlyArray<PublicUser>; group: string; q: string; error?: string; notice?: string }) => (
  <Layout viewer={props.viewer} title="Users">
    <ErrorBox message={props.error} />
    <Notice message={props.notice} />
    <form method="get" action="/admin/users" class="noprint">
      <input name="q" value={props.q} placeholder="login or name" />{" "}
      <select name="group">
        <option value="">any group</option>
        {GROUPS.map((g) => (
          <option value={g} selected={g === props.group}>{g}</option>
        ))}
      </select>{" "}
      <button type="submit">filter</button> <a href={`/admin/passwords?group=${encodeURIComponent(props.group)}`}>password sheet</a>
    </form>
    <p>{props.users.length} users</p>
    <table id="users">
      <tr><th>login</th><th>first name</th><th>last name</th><th>uid</th><th>group</th><th>ssh key</th></tr>
      {props.users.map((u) => (
        <tr>
          <td><a href={`/admin/users/${encodeURIComponent(u.login)}`}>{u.login}</a></td>
          <td>{u.firstname}</td>
          <td>{u.lastname}</td>
          <td>{u.uid}</td>
          <td>{u.group}</td>
          <td>{u.ssh_key === null ? "" : "yes"}</td>
        </tr>
      ))}
    </table>
    <h2>Import</h2>
    <form method="post" action="/admin/users/import" id="import-users">
      <Csrf viewer={props.viewer} />
      <p>One <code>First name&lt;TAB&gt;Last name</code> per line; logins and passwords are generated.</p>
      <textarea name="file" rows={6} cols={60} />
      <p>
        group{" "}
        <select name="group">
          {GROUPS.filter((g) => g !== "root" || props.viewer.group === "root").map((g) => (
            <option value={g}>{g}</option>
          ))}
        </select>{" "}
        <button type="submit">import</button>
      </p>
    </form>
  </Layout>
)

const EditPage = (props: { viewer: Viewer; user: PublicUser; error?: string; notice?: string }) => {
  const action = `/admin/users/${encodeURIComponent(props.user.login)}`
  return (
    <Layout viewer={props.viewer} title={`User ${props.user.login}`}>
      <ErrorBox message={props.error} />
      <Notice message={props.notice} />
      <p>{props.user.firstname} {props.user.lastname}, {props.user.group}, uid {props.user.uid}</p>
      <form method="post" action={action} id="ssh-key">
        <Csrf viewer={props.viewer} />
        <input type="hidden" name="action" value="ssh_key" />
        <p>SSH key</p>
        <textarea name="ssh_key" rows={3} cols={80}>{props.user.ssh_key ?? ""}</textarea>
        <p><button type="submit">save key</button></p>
      </form>
      <form method="post" action={action} id="password">
        <Csrf viewer={props.viewer} />
        <input type="hidden" name="action" value="password" />
        <p>
          New password <input name="password" placeholder="empty: generate one" />{" "}
          <button type="submit">set password</button>
        </p>
      </form>
    </Layout>
  )
}

const SheetPage = (props: { viewer: Viewer; users: ReadonlyArray<User> }) => (
  <Layout viewer={props.viewer} title="Passwords">
    <table id="passwords">
      {props.users.map((u) => (
        <tr>
          <td>{u.firstname} {u.lastname}</td>
          <td><code>{u.login}</code></td>
          <td><code>{u.password}</code></td>
        </tr>
      ))}
    </table>
  </Layout>
)

const searchOf = (url: string) => new URL(url, "http://x").searchParams
const loginOf = (url: string) => decodeURIComponent(new URL(url, "http://x").pathname.split("/")[3] ?? "")

const matches = (u: PublicUser, group: string, q: string) =>
  (group === "" || u.group === group) && (q === "" || u.login.includes(q) || `${u.firstname} ${u.lastname}`.toLowerCase().includes(q.toLowerCase()))

const unavailable = (viewer: Viewer, message: string) =>
  Effect.succeed(htmlResponse(<Layout viewer={viewer} title="Error"><p class="error">{message}</p></Layout>, 503))

export const userRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const udb = yield* Udb
    const web = yield* webRouter<UdbRepo | SystemAccounts>(router)
    const list = (viewer: Viewer, url: string, extra: { error?: string; notice?: string } = {}, status = 200) =>
      udb.query({}).pipe(
        Effect.map((users) => {
          const params = searchOf(url)
          const group = params.get("group") ?? ""
          const q = params.get("q") ?? ""
          return htmlResponse(<ListPage viewer={viewer} users={users.filter((u) => matches(u, group, q))} group={group} q={q} {...extra} />, status)
        }),
        Effect.catchAll((e) => unavailable(viewer, e.message))
      )
    const findUser = (login: string) => Effect.map(udb.query({ login }), (found) => found[0])

    yield* web.get("/admin/users", (request) => page("staff", (viewer) => list(viewer, request.url)))
    yield* web.post(
      "/admin/users/import",
      (request) =>
        formPost("staff", (viewer, form) => {
          const group = field(form, "group") ?? "user"
          if (!(GROUPS as ReadonlyArray<string>).includes(group) || (group === "root" && viewer.group !== "root")) {
            return list(viewer, request.url, { error: `cannot import into group ${JSON.stringify(group)}` }, 403)
          }
          const text = field(form, "file") ?? ""
          return importUsers("form", text.endsWith("\n") ? text : `${text}\n`, {
            format: { kind: "names" },
            group: group as Group,
            update: false,
            ignore: false,
            newPasswords: false,
            passwordLength: 8
          }).pipe(
            Effect.flatMap((lines) => list(viewer, "/admin/users", { notice: lines.join("; ") || "nothing to import" })),
            Effect.catchAll((e) => list(viewer, "/admin/users", { error: e.message }, 400))
          )
        }),
      (l) => l.rpcBodyBytes
    )
    yield* web.get("/admin/passwords", (request) =>
      page("staff", (viewer) => {
        const group = searchOf(request.url).get("group") ?? ""
        return udb.queryPrivate(group === "" ? {} : { group }).pipe(
          Effect.map((users) =>
            htmlResponse(<SheetPage viewer={viewer} users={users.filter((u) => mayEdit(viewer, u)).slice().sort((a, b) => a.login.localeCompare(b.login))} />)
          ),
          Effect.catchAll((e) => unavailable(viewer, e.message))
        )
      })
    )
    yield* web.get("/admin/users/:login", (request) =>
      page("staff", (viewer) =>
        findUser(loginOf(request.url)).pipe(
          Effect.map((user) =>
            user === undefined
              ? htmlResponse(<Layout viewer={viewer} title="Not found"><p class="error">no such user</p></Layout>, 404)
              : mayEdit(viewer, user)
                ? htmlResponse(<EditPage viewer={viewer} user={user} {...(searchOf(request.url).has("saved") ? { notice: "saved" } : {})} />)
                : htmlResponse(<Layout viewer={viewer} title="Forbidden"><p class="error">only a root edits a root</p></Layout>, 403)
          ),
          Effect.catchAll((e) => unavailable(viewer, e.message))
        )
      )
    )
    yield* web.post("/admin/users/:login", (request) =>
      formPost("staff", (viewer, form: Form) =>
        Effect.gen(function* () {
          const user = yield* findUser(loginOf(request.url))
          if (user === undefined) return htmlResponse(<Layout viewer={viewer} title="Not found"><p class="error">no such user</p></Layout>, 404)
          if (!mayEdit(viewer, user)) return htmlResponse(<Layout viewer={viewer} title="Forbidden"><p class="error">only a root edits a root</p></Layout>, 403)
          const action = field(form, "action")
          const write =
            action === "ssh_key"
              ? udb.setSshKey(user.login, field(form, "ssh_key") ?? null)
              : action === "password"
                ? udb.setPassword(user.login, (field(form, "password") ?? "") === "" ? undefined : field(form, "password"))
                : undefined
          if (write === undefined) return htmlResponse(<EditPage viewer={viewer} user={user} error={`unknown action ${JSON.stringify(action)}`} />, 400)
          return yield* write.pipe(
            Effect.map((saved) => seeOther(`/admin/users/${encodeURIComponent(saved.login)}?saved`)),
            Effect.catchAll((e) => Effect.succeed(htmlResponse(<EditPage viewer={viewer} user={user} error={e.message} />, 400)))
          )
        }).pipe(Effect.catchAll((e) => unavailable(viewer, e.message)))
      )
    )
  })
)
