import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect } from "effect"
import { HFS_SERVICE, HFS_STATUS_SERVICE, HfsRpcs, HfsStatusRpcs, type Location } from "../../protocols/hfs.js"
import { configOption, nodeOption } from "../../runtime/cli-client-options.js"
import { withRpcClient } from "../../runtime/cli-run.js"
import { table } from "../../runtime/cli-table.js"
import { loadHfsClientProfile } from "./config.js"

// `prolo hfs …`: where homes live and what each HFS serves, over the node's `/rpc/hfs-status`
// (signed with hfs-status.yml's secret); `migrate` moves a home, over `/rpc/hfs` (hfs-client.yml's
// secret: a reader cannot move homes). Any failure is one line on stderr and exit status 2.

const hfs = Command.make("hfs", { node: nodeOption, config: configOption })

const client = withRpcClient({ command: "hfs", profile: "hfs-status", group: HfsStatusRpcs, service: HFS_STATUS_SERVICE })
const withClient = <A>(body: Parameters<typeof client<A>>[2]) => Effect.flatMap(hfs, (where) => client(where, true, body))

const row = (l: Location) => [l.login, `hfs${l.hfs}`, String(l.generation), l.state === "migrating" ? `migrating to hfs${l.migrate_to}` : l.state]

const list = Command.make("list", {}, () =>
  withClient((c) =>
    Effect.gen(function* () {
      const locations = yield* c.list()
      if (locations.length === 0) return yield* Console.log("no homes yet")
      yield* Console.log(table(["LOGIN", "HFS", "GENERATION", "STATE"], locations.map(row)))
    })
  )
).pipe(Command.withDescription("every home: its HFS, generation and state"))

const where = Command.make("where", { login: Args.text({ name: "LOGIN" }) }, ({ login }) =>
  withClient((c) =>
    Effect.gen(function* () {
      const l = yield* c.where({ login })
      yield* Console.log(`${l.login}: hfs${l.hfs}, generation ${l.generation}, ${row(l)[3]}${l.contest ? " (contest homes)" : ""}`)
    })
  )
).pipe(Command.withDescription("where one user's home lives"))

const status = Command.make("status", {}, () =>
  withClient((c) =>
    Effect.gen(function* () {
      const all = yield* c.status()
      if (all.length === 0) return yield* Console.log("no HFS running on this node yet")
      for (const s of all) {
        yield* Console.log(
          `hfs${s.hfs}: ${s.host ?? "?"} rpc ${s.rpcPort ?? "-"} nbd ${s.nbdPort ?? "-"}${s.contest ? " (contest homes)" : ""}, ${s.served.length} home(s) granted`
        )
        if (s.served.length > 0) {
          yield* Console.log(
            table(
              ["LOGIN", "MACHINE", "IP", "GENERATION", "CONNECTIONS"],
              s.served.map((h) => [h.login, h.hostname, h.ip, String(h.generation), String(h.connections)])
            )
          )
        }
      }
    })
  )
).pipe(Command.withDescription("the HFS of this node: addresses, granted homes and their NBD connections"))

const mover = withRpcClient({
  command: "hfs migrate",
  profile: "hfs-client",
  group: HfsRpcs,
  service: HFS_SERVICE,
  secret: Effect.map(loadHfsClientProfile, (p) => p.shared_secret)
})

const migrate = Command.make(
  "migrate",
  {
    login: Args.text({ name: "LOGIN" }),
    to: Options.integer("to").pipe(Options.withDescription("the HFS id to move the home to (run by the node this command talks to)"))
  },
  ({ login, to }) =>
    Effect.flatMap(hfs, (node) =>
      mover(node, true, (c) =>
        Effect.gen(function* () {
          const l = yield* c.migrate({ login, to })
          yield* Console.log(`${l.login}: hfs${l.hfs}, generation ${l.generation}, ${row(l)[3]}`)
        })
      )
    )
).pipe(
  Command.withDescription(
    "move a user's home to HFS --to now (refused while the home is attached on a machine, or was granted less than live_grant_seconds ago)"
  )
)

export const hfsCommand = hfs.pipe(
  Command.withDescription("home file servers: where homes live (list, where), what is served (status), moving a home (migrate)"),
  Command.withSubcommands([list, where, status, migrate])
)
