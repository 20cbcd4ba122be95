import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect, Option } from "effect"
import { type Machine, MDB_SERVICE, MdbRpcs, type NewMachine, type Switch } from "../../protocols/mdb.js"
import { configOption, nodeOption } from "../../runtime/cli-client-options.js"
import { filterArgs, withRpcClient } from "../../runtime/cli-run.js"
import { table } from "../../runtime/cli-table.js"

// `prolo mdb …`: the operator's view of the machine database, over the node's rpc endpoint.
// The original's `manage.py addmachine` options are kept (`--hostname gw --mac … --aliases a,b`).
// Any failure is one line on stderr and exit status 2.

// `prolo mdb --node URL --config DIR …` (or env PROLO_NODE / PROLO_CONFIG_DIR), same defaults as every subcommand.
const mdb = Command.make("mdb", { node: nodeOption, config: configOption })

const text = (name: string, description: string) => Options.text(name).pipe(Options.withDescription(description))
const int = (name: string, description: string) => Options.integer(name).pipe(Options.withDescription(description))
const optional = <A>(o: Options.Options<A>) => Options.optional(o)

const machineOptions = {
  mac: text("mac", "MAC address, e.g. 11:22:33:44:55:66"),
  ip: optional(text("ip", "IPv4 address inside the pool of the mtype (default: allocated)")),
  aliases: optional(text("aliases", "comma-separated extra DNS names")),
  rfs: optional(int("rfs", "id of the nearest root file server (default 0)")),
  hfs: optional(int("hfs", "id of the nearest home file server (default 0)")),
  mtype: optional(text("mtype", "user, orga, cluster or service (default orga)")),
  room: optional(text("room", "pasteur, alt, cluster or other (default other)"))
}

const client = withRpcClient({ command: "mdb", profile: "mdb-server", group: MdbRpcs, service: MDB_SERVICE })

/** Runs `body` with an MDB client; any failure becomes one line on stderr and exit status 2. */
const withClient = <A>(needsSecret: boolean, body: Parameters<typeof client<A>>[2]) =>
  Effect.flatMap(mdb, (where) => client(where, needsSecret, body))

const get = <A>(o: Option.Option<A>): A | undefined => Option.getOrUndefined(o)

/** Drops the keys whose value is undefined (the payload schemas use exact optional fields). */
const defined = <T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> }

const showMachine = (m: Machine) => `${m.hostname} ${m.ip} ${m.mac} (${m.mtype}, ${m.room})`

const add = Command.make("add", { hostname: text("hostname", "DNS name, e.g. pas-r01p01"), ...machineOptions }, (o) =>
  withClient(true, (client) =>
    Effect.gen(function* () {
      const input: NewMachine = {
        hostname: o.hostname,
        mac: o.mac,
        ...defined({ ip: get(o.ip), aliases: get(o.aliases), rfs: get(o.rfs), hfs: get(o.hfs), mtype: get(o.mtype), room: get(o.room) })
      }
      const machine = yield* client.addMachine(input)
      yield* Console.log(`added ${showMachine(machine)}`)
    })
  )
).pipe(Command.withDescription("add a machine (the original addmachine)"))

const update = Command.make(
  "update",
  {
    target: Args.text({ name: "HOSTNAME" }).pipe(Args.withDescription("the machine to change")),
    hostname: optional(text("hostname", "new hostname")),
    mac: optional(text("mac", "new MAC address (the machine keeps its identity)")),
    ip: optional(text("ip", "new IP address, or 'auto' to allocate one from the pool")),
    aliases: optional(text("aliases", "new comma-separated aliases ('' to clear)")),
    rfs: optional(int("rfs", "nearest root file server")),
    hfs: optional(int("hfs", "nearest home file server")),
    mtype: optional(text("mtype", "user, orga, cluster or service")),
    room: optional(text("room", "pasteur, alt, cluster or other")),
    faulty: optional(text("faulty", "mark the machine faulty with this reason ('' to clear)"))
  },
  (o) =>
    withClient(true, (client) =>
      Effect.gen(function* () {
        const faulty = get(o.faulty)
        const changes = defined({
          hostname: get(o.hostname),
          mac: get(o.mac),
          ip: get(o.ip),
          aliases: get(o.aliases),
          rfs: get(o.rfs),
          hfs: get(o.hfs),
          mtype: get(o.mtype),
          room: get(o.room),
          is_faulty: faulty === undefined ? undefined : faulty !== "",
          is_faulty_details: faulty
        })
        const machine = yield* client.updateMachine({ hostname: o.target, changes })
        yield* Console.log(`updated ${showMachine(machine)}`)
      })
    )
).pipe(Command.withDescription("change a machine; MAC and IP changes keep its identity"))

const del = Command.make("del", { hostname: Args.text({ name: "HOSTNAME" }) }, (o) =>
  withClient(true, (client) =>
    Effect.flatMap(client.deleteMachine({ hostname: o.hostname }), (m) => Console.log(`deleted ${showMachine(m)}`))
  )
).pipe(Command.withDescription("delete a machine (the original delmachine)"))


export const machineTable = (machines: ReadonlyArray<Machine>): string =>
  table(
    ["HOSTNAME", "IP", "MAC", "MTYPE", "ROOM", "RFS", "HFS", "FAULTY", "ALIASES"],
    machines.map((m) => [
      m.hostname,
      m.ip,
      m.mac,
      m.mtype,
      m.room,
      String(m.rfs),
      String(m.hfs),
      m.is_faulty ? `yes: ${m.is_faulty_details}` : "",
      m.aliases
    ])
  )

const switchTable = (switches: ReadonlyArray<Switch>): string =>
  table(
    ["NAME", "CHASSIS", "ROOM", "RFS", "HFS"],
    switches.map((s) => [s.name, s.chassis, s.room, String(s.rfs), String(s.hfs)])
  )

const list = Command.make(
  "list",
  {
    filters: Args.text({ name: "FIELD=VALUE" }).pipe(
      Args.withDescription("filters as the original query, e.g. mtype=user room=alt aliases__contains=rfs0"),
      Args.repeated
    ),
    switches: Options.boolean("switches").pipe(Options.withDescription("list switches instead of machines"))
  },
  (o) =>
    withClient(false, (client) =>
      Effect.gen(function* () {
        const filters = yield* filterArgs(o.filters, (key, text) => (key.endsWith("__in") ? text.split(",") : text))
        if (o.switches) {
          yield* Console.log(switchTable(yield* client.switches({ filters })))
        } else {
          yield* Console.log(machineTable(yield* client.query({ filters })))
        }
      })
    )
).pipe(Command.withDescription("print machines (or switches) as an aligned table"))

const switchAdd = Command.make(
  "switch-add",
  {
    name: text("name", "switch name"),
    chassis: text("chassis", "LLDP chassis id (a MAC address)"),
    room: optional(text("room", "pasteur, alt, cluster or other")),
    rfs: optional(int("rfs", "root file server of the machines behind it")),
    hfs: optional(int("hfs", "home file server of the machines behind it"))
  },
  (o) =>
    withClient(true, (client) =>
      Effect.gen(function* () {
        const s = yield* client.addSwitch({
          name: o.name,
          chassis: o.chassis,
          ...defined({ room: get(o.room), rfs: get(o.rfs), hfs: get(o.hfs) })
        })
        yield* Console.log(`added switch ${s.name} ${s.chassis} (${s.room}, rfs ${s.rfs}, hfs ${s.hfs})`)
      })
    )
).pipe(Command.withDescription("register a switch for LLDP self-registration"))

const switchDel = Command.make("switch-del", { name: Args.text({ name: "NAME" }) }, (o) =>
  withClient(true, (client) => Effect.flatMap(client.deleteSwitch({ name: o.name }), (s) => Console.log(`deleted switch ${s.name}`)))
).pipe(Command.withDescription("delete a switch"))

const parseValue = (raw: string): boolean | number | string =>
  /^(true|on|yes)$/i.test(raw) ? true : /^(false|off|no)$/i.test(raw) ? false : /^-?[0-9]{1,15}$/.test(raw) ? Number(raw) : raw

const set = Command.make("set", { key: Args.text({ name: "KEY" }), value: Args.text({ name: "VALUE" }) }, (o) =>
  withClient(true, (client) =>
    Effect.flatMap(client.setSetting({ key: o.key, value: parseValue(o.value) }), (s) =>
      Console.log(`${s.key} = ${JSON.stringify(s.value)}`)
    )
  )
).pipe(Command.withDescription("set a setting, e.g. allow_self_registration false"))

export const mdbCommand = mdb.pipe(
  Command.withDescription("the machine database: add, change, list machines and switches"),
  Command.withSubcommands([add, update, del, list, switchAdd, switchDel, set])
)
