import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { Machine, Switch } from "../../protocols/mdb.js"
import type { FieldSpec } from "../../store/filters.js"

/** A machine as stored: aliases as a list, the stable id. */
export const MachineRow = Schema.Struct({ id: Schema.Int, ...Machine.fields, aliases: Schema.Array(Schema.String) })
export type MachineRow = typeof MachineRow.Type
export type MachineValues = Omit<MachineRow, "id">

// A switch is stored as it is on the wire.
export const SwitchRow = Switch
export type SwitchRow = typeof SwitchRow.Type

export const PoolRow = Schema.Struct({ mtype: Schema.String, network: Schema.String })
export type PoolRow = typeof PoolRow.Type

export const SettingRow = Schema.Struct({
  key: Schema.String,
  value_bool: Schema.NullOr(Schema.Boolean),
  value_str: Schema.NullOr(Schema.String),
  value_int: Schema.NullOr(Schema.Number)
})
export type SettingRow = typeof SettingRow.Type

/** Fields `query` filters on (the original's whitelist, plus the fault flags). */
export const MACHINE_FIELDS: Readonly<Record<string, FieldSpec>> = {
  hostname: { kind: "text", column: "hostname" },
  aliases: { kind: "names", column: "aliases" },
  ip: { kind: "text", column: "host(ip)" },
  mac: { kind: "text", column: "mac" },
  rfs: { kind: "int", column: "rfs" },
  hfs: { kind: "int", column: "hfs" },
  mtype: { kind: "text", column: "mtype" },
  room: { kind: "text", column: "room" },
  is_faulty: { kind: "bool", column: "is_faulty" },
  is_faulty_details: { kind: "text", column: "is_faulty_details" }
}

export const SWITCH_FIELDS: Readonly<Record<string, FieldSpec>> = {
  name: { kind: "text", column: "name" },
  chassis: { kind: "text", column: "chassis" },
  rfs: { kind: "int", column: "rfs" },
  hfs: { kind: "int", column: "hfs" },
  room: { kind: "text", column: "room" }
}

// Rows come from our own schema: one that fails to decode is a bug, not an input error.
const decodeRows =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> =>
    Effect.orDie(Schema.decodeUnknown(Schema.Array(schema))(rows))

const first = <A>(rows: ReadonlyArray<A>): Option.Option<A> => Option.fromNullable(rows[0])

export const makeRepo = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const machineColumns = sql.literal(
    "id, hostname, aliases, host(ip) AS ip, mac, rfs, hfs, mtype, room, is_faulty, is_faulty_details"
  )
  const machines = decodeRows(MachineRow)
  const switches = decodeRows(SwitchRow)

  const setValues = (v: MachineValues) => ({
    hostname: v.hostname,
    aliases: v.aliases,
    ip: v.ip,
    mac: v.mac,
    rfs: v.rfs,
    hfs: v.hfs,
    mtype: v.mtype,
    room: v.room,
    is_faulty: v.is_faulty,
    is_faulty_details: v.is_faulty_details
  })

  return {
    /** Machines matching `where`, ordered by hostname then ip (as text), as the original. */
    machines: (where: Fragment): Effect.Effect<ReadonlyArray<MachineRow>, SqlError> =>
      Effect.flatMap(sql`SELECT ${machineColumns} FROM machine WHERE ${where} ORDER BY hostname, host(ip)`, machines),

    machineByHostname: (hostname: string, lock: boolean): Effect.Effect<Option.Option<MachineRow>, SqlError> =>
      sql`SELECT ${machineColumns} FROM machine WHERE hostname = ${hostname} ${sql.literal(lock ? "FOR UPDATE" : "")}`.pipe(
        Effect.flatMap(machines),
        Effect.map(first)
      ),

    insertMachine: (v: MachineValues): Effect.Effect<MachineRow, SqlError> =>
      sql`INSERT INTO machine ${sql.insert(setValues(v))} RETURNING ${machineColumns}`.pipe(
        Effect.flatMap(machines),
        Effect.map((rows) => rows[0]!)
      ),

    updateMachine: (id: number, v: MachineValues): Effect.Effect<MachineRow, SqlError> =>
      sql`UPDATE machine SET ${sql.update(setValues(v))} WHERE id = ${id} RETURNING ${machineColumns}`.pipe(
        Effect.flatMap(machines),
        Effect.map((rows) => rows[0]!)
      ),

    deleteMachine: (hostname: string): Effect.Effect<Option.Option<MachineRow>, SqlError> =>
      sql`DELETE FROM machine WHERE hostname = ${hostname} RETURNING ${machineColumns}`.pipe(
        Effect.flatMap(machines),
        Effect.map(first)
      ),

    /** Locks the pool row: allocations and manual IPs in one pool are serialised by it. */
    lockPool: (mtype: string): Effect.Effect<Option.Option<PoolRow>, SqlError> =>
      sql`SELECT mtype, network::text AS network FROM ip_pool WHERE mtype = ${mtype} FOR UPDATE`.pipe(
        Effect.flatMap(decodeRows(PoolRow)),
        Effect.map(first)
      ),

    /** The lowest address of the pool that is not its network, broadcast or a reserved address, nor taken. */
    freeIp: (mtype: string): Effect.Effect<Option.Option<string>, SqlError> =>
      Effect.map(
        sql<{ ip: string }>`
          SELECT host(a.ip) AS ip
          FROM ip_pool p
          CROSS JOIN LATERAL generate_series(1::bigint, (2::bigint ^ (32 - masklen(p.network)))::bigint - 2) AS s(i)
          CROSS JOIN LATERAL (SELECT set_masklen(p.network::inet + s.i, 32) AS ip) AS a
          WHERE p.mtype = ${mtype}
            AND a.ip <> ALL (p.reserved)
            AND NOT EXISTS (SELECT 1 FROM machine m WHERE m.ip = a.ip)
          ORDER BY s.i
          LIMIT 1`,
        (rows) => Option.map(first(rows), (r) => r.ip)
      ),

    /** Hostname of the machine holding `field` = `value` (name: hostname or alias). */
    holder: (field: "name" | "ip" | "mac", value: string): Effect.Effect<Option.Option<string>, SqlError> =>
      Effect.map(
        field === "name"
          ? sql<{ hostname: string }>`SELECT m.hostname FROM machine_name n JOIN machine m ON m.id = n.machine_id WHERE n.name = ${value}`
          : field === "ip"
            ? sql<{ hostname: string }>`SELECT hostname FROM machine WHERE host(ip) = ${value}`
            : sql<{ hostname: string }>`SELECT hostname FROM machine WHERE mac = ${value}`,
        (rows) => Option.map(first(rows), (r) => r.hostname)
      ),

    switches: (where: Fragment): Effect.Effect<ReadonlyArray<SwitchRow>, SqlError> =>
      Effect.flatMap(sql`SELECT name, chassis, room, rfs, hfs FROM switch WHERE ${where} ORDER BY rfs, hfs, name`, switches),

    insertSwitch: (s: SwitchRow): Effect.Effect<SwitchRow, SqlError> =>
      sql`INSERT INTO switch ${sql.insert({ ...s })} RETURNING name, chassis, room, rfs, hfs`.pipe(
        Effect.flatMap(switches),
        Effect.map((rows) => rows[0]!)
      ),

    deleteSwitch: (name: string): Effect.Effect<Option.Option<SwitchRow>, SqlError> =>
      sql`DELETE FROM switch WHERE name = ${name} RETURNING name, chassis, room, rfs, hfs`.pipe(
        Effect.flatMap(switches),
        Effect.map(first)
      ),

    settings: (): Effect.Effect<ReadonlyArray<SettingRow>, SqlError> =>
      Effect.flatMap(sql`SELECT key, value_bool, value_str, value_int FROM setting ORDER BY key`, decodeRows(SettingRow)),

    setting: (key: string): Effect.Effect<Option.Option<SettingRow>, SqlError> =>
      sql`SELECT key, value_bool, value_str, value_int FROM setting WHERE key = ${key}`.pipe(
        Effect.flatMap(decodeRows(SettingRow)),
        Effect.map(first)
      ),

    putSetting: (row: SettingRow): Effect.Effect<void, SqlError> =>
      Effect.asVoid(sql`INSERT INTO setting ${sql.insert({ ...row })}
        ON CONFLICT (key) DO UPDATE SET value_bool = EXCLUDED.value_bool, value_str = EXCLUDED.value_str, value_int = EXCLUDED.value_int`)
  }
})

export class MdbRepo extends Context.Tag("prolo/mdb/MdbRepo")<MdbRepo, Effect.Effect.Success<typeof makeRepo>>() {
  static readonly layer = Layer.effect(MdbRepo, makeRepo)
}
