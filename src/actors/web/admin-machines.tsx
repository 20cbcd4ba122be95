import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type { HttpServerResponse } from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { type Machine, type MachineChanges, MTYPES, type NewMachine, ROOMS } from "../../protocols/mdb.js"
import { Mdb } from "../mdb/service.js"
import { field, type Form, formPost, page, seeOther } from "./guard.js"
import { webRouter } from "./web-router.js"
import { Csrf, ErrorBox, htmlResponse, Layout, Notice } from "./html.js"
import type { Viewer } from "./viewer.js"

// Machines (the original's MDB Django admin): list with filters, add, edit, mark faulty. Every
// write goes through the MDB service, so the page shows the service's own errors (bad MAC,
// hostname taken by r01p02, IP pool exhausted) and stores nothing on any of them.

export interface MachineFilters {
  readonly q: string
  readonly room: string
  readonly mtype: string
  readonly faulty: string
}

export const filterMachines = (machines: ReadonlyArray<Machine>, f: MachineFilters): ReadonlyArray<Machine> =>
  machines
    .filter(
      (m) =>
        (f.q === "" || m.hostname.includes(f.q) || m.aliases.includes(f.q) || m.ip.includes(f.q) || m.mac.includes(f.q.toLowerCase())) &&
        (f.room === "" || m.room === f.room) &&
        (f.mtype === "" || m.mtype === f.mtype) &&
        (f.faulty === "" || String(m.is_faulty) === f.faulty)
    )
    .slice()
    .sort((a, b) => a.hostname.localeCompare(b.hostname))

const Select = (props: { name: string; value: string; options: ReadonlyArray<string>; any?: string }) => (
  <select name={props.name}>
    {props.any === undefined ? null : <option value="">{props.any}</option>}
    {props.options.map((o) => (
      <option value={o} selected={o === props.value}>
        {o}
      </option>
    ))}
  </select>
)

const MachineFields = (props: { values: Form }) => {
  const v = (name: string, fallback = "") => field(props.values, name) ?? fallback
  return (
    <fieldset>
      <label>
        hostname <input name="hostname" value={v("hostname")} required />
      </label>{" "}
      <label>
        MAC <input name="mac" value={v("mac")} required />
      </label>{" "}
      <label>
        IP <input name="ip" value={v("ip")} placeholder="auto" />
      </label>{" "}
      <label>
        aliases <input name="aliases" value={v("aliases")} />
      </label>{" "}
      <label>
        rfs <input name="rfs" value={v("rfs", "0")} size={3} />
      </label>{" "}
      <label>
        hfs <input name="hfs" value={v("hfs", "0")} size={3} />
      </label>{" "}
      <label>
        type <Select name="mtype" value={v("mtype", "user")} options={MTYPES} />
      </label>{" "}
      <label>
        room <Select name="room" value={v("room", "pasteur")} options={ROOMS} />
      </label>
    </fieldset>
  )
}

const ListPage = (props: { viewer: Viewer; machines: ReadonlyArray<Machine>; filters: MachineFilters; error?: string; added?: Form }) => (
  <Layout viewer={props.viewer} title="Machines">
    <form method="get" action="/admin/machines" class="noprint">
      <input name="q" value={props.filters.q} placeholder="hostname, ip, mac" />{" "}
      <Select name="room" value={props.filters.room} options={ROOMS} any="any room" />{" "}
      <Select name="mtype" value={props.filters.mtype} options={MTYPES} any="any type" />{" "}
      <select name="faulty">
        <option value="">faulty or not</option>
        <option value="true" selected={props.filters.faulty === "true"}>
          faulty
        </option>
        <option value="false" selected={props.filters.faulty === "false"}>
          working
        </option>
      </select>{" "}
      <button type="submit">filter</button>
    </form>
    <p>{props.machines.length} machines</p>
    <table id="machines">
      <tr>
        <th>hostname</th>
        <th>aliases</th>
        <th>ip</th>
        <th>mac</th>
        <th>rfs</th>
        <th>hfs</th>
        <th>type</th>
        <th>room</th>
        <th>faulty</th>
      </tr>
      {props.machines.map((m) => (
        <tr>
          <td>
            <a href={`/admin/machines/${encodeURIComponent(m.hostname)}`}>{m.hostname}</a>
          </td>
          <td>{m.aliases}</td>
          <td>{m.ip}</td>
          <td>{m.mac}</td>
          <td>{m.rfs}</td>
          <td>{m.hfs}</td>
          <td>{m.mtype}</td>
          <td>{m.room}</td>
          <td>{m.is_faulty ? `yes: ${m.is_faulty_details}` : ""}</td>
        </tr>
      ))}
    </table>
    <h2>Add a machine</h2>
    <ErrorBox message={props.error} />
    <form method="post" action="/admin/machines" id="add-machine">
      <Csrf viewer={props.viewer} />
      <MachineFields values={props.added ?? []} />
      <button type="submit">add</button>
    </form>
  </Layout>
)

const EditPage = (props: { viewer: Viewer; machine: Machine; values: Form; error?: string; notice?: string }) => (
  <Layout viewer={props.viewer} title={`Machine ${props.machine.hostname}`}>
    <ErrorBox message={props.error} />
    <Notice message={props.notice} />
    <form method="post" action={`/admin/machines/${encodeURIComponent(props.machine.hostname)}`} id="edit-machine">
      <Csrf viewer={props.viewer} />
      <MachineFields values={props.values} />
      <button type="submit">save</button>
    </form>
    <h2>Faulty</h2>
    <form method="post" action={`/admin/machines/${encodeURIComponent(props.machine.hostname)}/faulty`} id="faulty-machine">
      <Csrf viewer={props.viewer} />
      <label>
        <input type="checkbox" name="is_faulty" value="true" checked={props.machine.is_faulty} /> faulty
      </label>{" "}
      <input name="is_faulty_details" value={props.machine.is_faulty_details} placeholder="what is wrong" size={40} />{" "}
      <button type="submit">save</button>
    </form>
  </Layout>
)

const machineForm = (m: Machine): Form => [
  ["hostname", m.hostname],
  ["mac", m.mac],
  ["ip", m.ip],
  ["aliases", m.aliases],
  ["rfs", String(m.rfs)],
  ["hfs", String(m.hfs)],
  ["mtype", m.mtype],
  ["room", m.room]
]

/** The form's fields as the service takes them; an integer field that is not one is the page's error. */
export const changesOf = (form: Form): MachineChanges | string => {
  const changes: { -readonly [K in keyof MachineChanges]: MachineChanges[K] } = {}
  for (const name of ["hostname", "mac", "ip", "aliases", "mtype", "room"] as const) {
    const value = field(form, name)?.trim()
    if (value !== undefined && !(name === "ip" && value === "")) changes[name] = value
  }
  for (const name of ["rfs", "hfs"] as const) {
    const value = field(form, name)?.trim()
    if (value === undefined || value === "") continue
    if (!/^\d{1,6}$/.test(value)) return `${name}: expected a number, got ${JSON.stringify(value)}`
    changes[name] = Number(value)
  }
  return changes
}

const queryOf = (url: string): MachineFilters => {
  const params = new URL(url, "http://x").searchParams
  return { q: params.get("q") ?? "", room: params.get("room") ?? "", mtype: params.get("mtype") ?? "", faulty: params.get("faulty") ?? "" }
}

const allMachines = Effect.flatMap(Mdb, (mdb) => mdb.query({}))

const failed = (viewer: Viewer, message: string) =>
  Effect.gen(function* () {
    return htmlResponse(<Layout viewer={viewer} title="Error"><p class="error">{message}</p></Layout>, 503)
  })

export const machineRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const mdb = yield* Mdb
    const web = yield* webRouter(router)
    const list = (viewer: Viewer, url: string, extra: { error?: string; added?: Form }, status = 200): Effect.Effect<HttpServerResponse> =>
      allMachines.pipe(
        Effect.provideService(Mdb, mdb),
        Effect.map((machines) => {
          const filters = queryOf(url)
          return htmlResponse(<ListPage viewer={viewer} machines={filterMachines(machines, filters)} filters={filters} {...extra} />, status)
        }),
        Effect.catchAll((e) => failed(viewer, e.message))
      )
    const one = (hostname: string) => Effect.map(mdb.query({ hostname }), (found) => found[0])
    const hostnameOf = (url: string) => decodeURIComponent(new URL(url, "http://x").pathname.split("/")[3] ?? "")

    yield* web.get("/admin/machines", (request) => page("staff", (viewer) => list(viewer, request.url, {})))
    yield* web.post("/admin/machines", (request) =>
      formPost("staff", (viewer, form) => {
        const changes = changesOf(form)
        if (typeof changes === "string") return list(viewer, request.url, { error: changes, added: form }, 400)
        const machine = { ...changes, hostname: changes.hostname ?? "", mac: changes.mac ?? "" } satisfies NewMachine
        return mdb.addMachine(machine).pipe(
          Effect.map((added) => seeOther(`/admin/machines?q=${encodeURIComponent(added.hostname)}`)),
          Effect.catchAll((e) => list(viewer, "/admin/machines", { error: e.message, added: form }, 400))
        )
      })
    )
    yield* web.get("/admin/machines/:hostname", (request) =>
      page("staff", (viewer) =>
        one(hostnameOf(request.url)).pipe(
          Effect.map((machine) =>
            machine === undefined
              ? htmlResponse(<Layout viewer={viewer} title="Not found"><p class="error">no such machine</p></Layout>, 404)
              : htmlResponse(<EditPage viewer={viewer} machine={machine} values={machineForm(machine)} {...(new URL(request.url, "http://x").searchParams.has("saved") ? { notice: "saved" } : {})} />)
          ),
          Effect.catchAll((e) => failed(viewer, e.message))
        )
      )
    )
    const update = (request: { url: string }, build: (form: Form) => MachineChanges | string, suffix: string) =>
      formPost("staff", (viewer, form) =>
        Effect.gen(function* () {
          const hostname = hostnameOf(request.url)
          const machine = yield* one(hostname)
          if (machine === undefined) return htmlResponse(<Layout viewer={viewer} title="Not found"><p class="error">no such machine {hostname}</p></Layout>, 404)
          const changes = build(form)
          const refuse = (message: string) => htmlResponse(<EditPage viewer={viewer} machine={machine} values={suffix === "" ? form : machineForm(machine)} error={message} />, 400)
          if (typeof changes === "string") return refuse(changes)
          return yield* mdb.updateMachine(hostname, changes).pipe(
            Effect.map((saved) => seeOther(`/admin/machines/${encodeURIComponent(saved.hostname)}?saved`)),
            Effect.catchAll((e) => Effect.succeed(refuse(e.message)))
          )
        }).pipe(Effect.catchAll((e) => failed(viewer, e.message)))
      )
    yield* web.post("/admin/machines/:hostname", (request) => update(request, changesOf, ""))
    yield* web.post("/admin/machines/:hostname/faulty", (request) =>
      update(
        request,
        (form) => ({ is_faulty: field(form, "is_faulty") === "true", is_faulty_details: field(form, "is_faulty_details")?.trim() ?? "" }),
        "/faulty"
      )
    )
  })
)
