import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Either, Layer, Option } from "effect"
import {
  AlreadyTaken,
  type Filters,
  InvalidField,
  InvalidFilter,
  type Inventory,
  type Machine,
  type MachineChanges,
  type MachineRecord,
  MachineNotFound,
  MDB_TOPIC,
  type Mtype,
  type NewMachine,
  type NewSwitch,
  PoolExhausted,
  RegistrationDisabled,
  type Registration,
  type Setting,
  type SettingValue,
  type Switch,
  SwitchNotFound,
  UnknownSetting
} from "../../protocols/mdb.js"
import { type ChangeEntry, ChangeLog } from "../../store/change-log.js"
import { compileFilters, refusedFilter } from "../../store/filters.js"
import { uniqueViolation } from "../../store/pg-errors.js"
import { MACHINE_FIELDS, type MachineRow, type MachineValues, MdbRepo, SWITCH_FIELDS, type SettingRow } from "./repo.js"
import {
  checkAliases,
  checkDetails,
  checkIp,
  checkMtype,
  checkName,
  checkRoom,
  checkServerId,
  normaliseMac,
  poolOf
} from "./validate.js"

export type WriteError = InvalidField | AlreadyTaken | PoolExhausted

export interface MdbService {
  readonly query: (filters: Filters) => Effect.Effect<ReadonlyArray<Machine>, InvalidFilter | SqlError>
  readonly switches: (filters: Filters) => Effect.Effect<ReadonlyArray<Switch>, InvalidFilter | SqlError>
  readonly ansible: Effect.Effect<Inventory, SqlError>
  readonly register: (r: Registration) => Effect.Effect<string, RegistrationDisabled | WriteError | SqlError>
  readonly addMachine: (m: NewMachine) => Effect.Effect<Machine, WriteError | SqlError>
  readonly updateMachine: (hostname: string, changes: MachineChanges) => Effect.Effect<Machine, MachineNotFound | WriteError | SqlError>
  readonly deleteMachine: (hostname: string) => Effect.Effect<Machine, MachineNotFound | SqlError>
  readonly addSwitch: (s: NewSwitch) => Effect.Effect<Switch, InvalidField | AlreadyTaken | SqlError>
  readonly deleteSwitch: (name: string) => Effect.Effect<Switch, SwitchNotFound | SqlError>
  readonly settings: Effect.Effect<ReadonlyArray<Setting>, SqlError>
  readonly setSetting: (key: string, value: SettingValue) => Effect.Effect<Setting, UnknownSetting | InvalidField | SqlError>
}

export class Mdb extends Context.Tag("prolo/mdb/Mdb")<Mdb, MdbService>() {}

export const REGISTRATION_SETTING = "allow_self_registration"

/** Settings an operator may set, with the kind of value each takes. */
const KNOWN_SETTINGS: Readonly<Record<string, "boolean" | "number" | "string">> = {
  [REGISTRATION_SETTING]: "boolean"
}

export const toWire = (row: MachineRow): Machine => ({
  hostname: row.hostname,
  aliases: row.aliases.join(","),
  ip: row.ip,
  mac: row.mac,
  rfs: row.rfs,
  hfs: row.hfs,
  mtype: row.mtype,
  room: row.room,
  is_faulty: row.is_faulty,
  is_faulty_details: row.is_faulty_details
})

export const toRecord = (row: MachineRow): MachineRecord => ({ id: row.id, ...toWire(row) })

const settingValue = (row: SettingRow): Setting => ({
  key: row.key,
  value: row.value_bool ?? row.value_int ?? row.value_str ?? null
})

const sameValues = (a: MachineRow, b: MachineRow): boolean =>
  JSON.stringify(toRecord(a)) === JSON.stringify(toRecord(b))

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const repo = yield* MdbRepo
  const log = yield* ChangeLog

  const where = (fields: typeof MACHINE_FIELDS, filters: Filters) =>
    Either.match(compileFilters(sql, fields, filters), {
      onLeft: (e) => Effect.fail(new InvalidFilter({ key: e.key, message: e.message })),
      onRight: Effect.succeed
    })

  // PostgreSQL may still refuse a value JS accepted (a regex dialect difference).
  const badValue = <A>(filters: Filters, self: Effect.Effect<A, SqlError | InvalidFilter>) =>
    Effect.catchTag(self, "SqlError", (e): Effect.Effect<never, SqlError | InvalidFilter> =>
      Option.match(refusedFilter(filters, e.cause), {
        onNone: () => Effect.fail(e),
        onSome: (r) => Effect.fail(new InvalidFilter({ key: r.key, message: r.message }))
      })
    )

  const publish = (entries: ReadonlyArray<ChangeEntry>) => log.append(MDB_TOPIC, entries)
  const update = (row: MachineRow): ChangeEntry => ({ op: "update", key: row.mac, record: toRecord(row) })
  const remove = (row: MachineRow): ChangeEntry => ({ op: "delete", key: row.mac, record: toRecord(row) })

  /**
   * Runs a machine write in one transaction. A unique constraint refusing it becomes
   * `AlreadyTaken`, naming the holder (looked up after the rollback).
   */
  const write = <A, E>(
    attempted: { readonly hostname: string },
    body: Effect.Effect<A, E | SqlError>
  ): Effect.Effect<A, E | AlreadyTaken | SqlError> =>
    sql.withTransaction(body).pipe(
      Effect.catchIf(
        (e): e is SqlError => Option.isSome(uniqueViolation(e)),
        (e) => {
          const { constraint, value } = Option.getOrThrow(uniqueViolation(e))
          const v = Option.getOrElse(value, () => "?")
          // machine_hostname_key, or machine_name_pkey (any hostname or alias, from the trigger).
          const [field, lookup] =
            constraint === "machine_ip_key"
              ? (["ip", "ip"] as const)
              : constraint === "machine_mac_key"
                ? (["mac", "mac"] as const)
                : ([v === attempted.hostname ? "hostname" : "alias", "name"] as const)
          return repo.holder(lookup, v).pipe(
            Effect.flatMap((holder) =>
              Effect.fail(
                new AlreadyTaken({
                  field,
                  value: v,
                  ...(Option.isSome(holder) ? { holder: holder.value } : {}),
                  message: `${field} ${v} is already used by machine ${Option.getOrElse(holder, () => "(another machine)")}`
                })
              )
            )
          )
        }
      )
    )

  const lockPool = (mtype: Mtype) =>
    Effect.flatMap(repo.lockPool(poolOf(mtype)), (pool) =>
      Option.match(pool, {
        // Only when an operator deleted a seeded pool row.
        onNone: () =>
          Effect.fail(new PoolExhausted({ pool: poolOf(mtype), network: "", message: `no IP pool is configured for mtype ${mtype}` })),
        onSome: Effect.succeed
      })
    )

  /** The IP for a machine of `mtype`: `requested` checked against the pool, else the lowest free one. */
  const assignIp = (mtype: Mtype, requested: string | undefined) =>
    Effect.gen(function* () {
      const pool = yield* lockPool(mtype)
      if (requested !== undefined && requested !== "auto") return yield* checkIp(requested, mtype, pool)
      const free = yield* repo.freeIp(pool.mtype)
      if (Option.isNone(free)) {
        return yield* new PoolExhausted({
          pool: pool.mtype,
          network: pool.network,
          message: `unable to allocate an IP address: the ${pool.mtype} pool ${pool.network} is full`
        })
      }
      return free.value
    })

  const registrationAllowed = Effect.map(repo.setting(REGISTRATION_SETTING), (row) =>
    Option.match(row, { onNone: () => false, onSome: (r) => r.value_bool === true })
  )

  const validateNew = (m: NewMachine) =>
    Effect.gen(function* () {
      const hostname = yield* checkName("hostname", m.hostname)
      return {
        hostname,
        aliases: yield* checkAliases(hostname, m.aliases ?? ""),
        mac: yield* normaliseMac("mac", m.mac),
        rfs: yield* checkServerId("rfs", m.rfs ?? 0),
        hfs: yield* checkServerId("hfs", m.hfs ?? 0),
        mtype: yield* checkMtype(m.mtype ?? "orga"),
        room: yield* checkRoom(m.room ?? "other"),
        is_faulty: m.is_faulty ?? false,
        is_faulty_details: yield* checkDetails(m.is_faulty_details ?? "")
      }
    })

  const insert = (m: NewMachine) =>
    Effect.gen(function* () {
      const v = yield* validateNew(m)
      return yield* write(
        v,
        Effect.gen(function* () {
          const ip = yield* assignIp(v.mtype, m.ip)
          const row = yield* repo.insertMachine({ ...v, ip })
          yield* publish([update(row)])
          return row
        })
      )
    })

  const register: MdbService["register"] = (r) =>
    Effect.gen(function* () {
      // A refusal comes first, before any validation: the menu shows this one message.
      if (!(yield* registrationAllowed)) {
        return yield* new RegistrationDisabled({ message: "self registration is disabled" })
      }
      const row = yield* insert({ hostname: r.hostname, mac: r.mac, rfs: r.rfs, hfs: r.hfs, room: r.room, mtype: r.mtype })
      return row.ip
    })

  const updateMachine: MdbService["updateMachine"] = (hostname, c) =>
    write(
      { hostname: c.hostname ?? hostname },
      Effect.gen(function* () {
        const found = yield* repo.machineByHostname(hostname, true)
        if (Option.isNone(found)) {
          return yield* new MachineNotFound({ hostname, message: `no machine named ${hostname}` })
        }
        const old = found.value
        const newHostname = c.hostname === undefined ? old.hostname : yield* checkName("hostname", c.hostname)
        const mtype = c.mtype === undefined ? old.mtype : yield* checkMtype(c.mtype)
        const next: MachineValues = {
          hostname: newHostname,
          aliases: yield* checkAliases(newHostname, c.aliases ?? old.aliases.join(",")),
          mac: c.mac === undefined ? old.mac : yield* normaliseMac("mac", c.mac),
          rfs: c.rfs === undefined ? old.rfs : yield* checkServerId("rfs", c.rfs),
          hfs: c.hfs === undefined ? old.hfs : yield* checkServerId("hfs", c.hfs),
          mtype,
          room: c.room === undefined ? old.room : yield* checkRoom(c.room),
          is_faulty: c.is_faulty ?? old.is_faulty,
          is_faulty_details: c.is_faulty_details === undefined ? old.is_faulty_details : yield* checkDetails(c.is_faulty_details),
          // A type change keeps the address only if it lies in the new type's pool.
          ip: c.ip !== undefined ? yield* assignIp(mtype, c.ip) : mtype !== old.mtype ? yield* assignIp(mtype, old.ip) : old.ip
        }
        const row = yield* repo.updateMachine(old.id, next)
        if (sameValues(old, row)) return row
        yield* publish(row.mac === old.mac ? [update(row)] : [remove(old), update(row)])
        return row
      })
    ).pipe(Effect.map(toWire))

  const deleteMachine: MdbService["deleteMachine"] = (hostname) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const gone = yield* repo.deleteMachine(hostname)
          if (Option.isNone(gone)) return yield* new MachineNotFound({ hostname, message: `no machine named ${hostname}` })
          yield* publish([remove(gone.value)])
          return toWire(gone.value)
        })
      )

  const ansible: MdbService["ansible"] = Effect.map(repo.machines(sql.literal("true")), (rows) => {
    const groups = ["orga", "user", "cluster", "service", "pasteur", "alt", "other"] as const
    const inventory: Record<string, { hosts: Array<string> }> = {}
    for (const g of groups) inventory[g] = { hosts: [] }
    const hostvars: Record<string, unknown> = {}
    for (const m of rows) {
      for (const g of new Set([m.mtype, m.room])) inventory[g]?.hosts.push(m.hostname)
      hostvars[m.hostname] = {
        mac: m.mac,
        rfs: m.rfs,
        hfs: m.hfs,
        room: m.room,
        aliases: [...m.aliases],
        is_faulty: m.is_faulty,
        is_faulty_details: m.is_faulty_details
      }
    }
    return { ...inventory, _meta: { hostvars } }
  })

  const addSwitch: MdbService["addSwitch"] = (s) =>
    Effect.gen(function* () {
      const name = s.name.trim()
      if (name === "" || name.length > 64) {
        return yield* new InvalidField({ field: "name", value: s.name, message: "switch name must be 1 to 64 characters" })
      }
      const row = {
        name,
        chassis: yield* normaliseMac("chassis", s.chassis),
        room: yield* checkRoom(s.room ?? "other"),
        rfs: yield* checkServerId("rfs", s.rfs ?? 0),
        hfs: yield* checkServerId("hfs", s.hfs ?? 0)
      }
      return yield* repo.insertSwitch(row).pipe(
        Effect.catchIf(
          (e): e is SqlError => Option.isSome(uniqueViolation(e)),
          (e) => {
            const field = Option.getOrThrow(uniqueViolation(e)).constraint === "switch_name_key" ? "name" : "chassis"
            const value = field === "name" ? row.name : row.chassis
            return Effect.fail(new AlreadyTaken({ field, value, message: `switch ${field} ${value} is already registered` }))
          }
        )
      )
    })

  const deleteSwitch: MdbService["deleteSwitch"] = (name) =>
    Effect.flatMap(repo.deleteSwitch(name), (gone) =>
      Option.match(gone, {
        onNone: () => Effect.fail(new SwitchNotFound({ name, message: `no switch named ${name}` })),
        onSome: Effect.succeed
      })
    )

  const setSetting: MdbService["setSetting"] = (key, value) =>
    Effect.gen(function* () {
      const kind = Object.hasOwn(KNOWN_SETTINGS, key) ? KNOWN_SETTINGS[key] : undefined
      if (kind === undefined) {
        return yield* new UnknownSetting({ key, message: `unknown setting ${key} (known: ${Object.keys(KNOWN_SETTINGS).join(", ")})` })
      }
      if (typeof value !== kind) {
        return yield* new InvalidField({ field: key, value: String(value), message: `setting ${key} takes a ${kind}, got ${JSON.stringify(value)}` })
      }
      const row: SettingRow = {
        key,
        value_bool: typeof value === "boolean" ? value : null,
        value_int: typeof value === "number" ? value : null,
        value_str: typeof value === "string" ? value : null
      }
      yield* repo.putSetting(row)
      return settingValue(row)
    })

  return Mdb.of({
    query: (filters) =>
      badValue(filters, Effect.flatMap(where(MACHINE_FIELDS, filters), repo.machines)).pipe(Effect.map((rows) => rows.map(toWire))),
    switches: (filters) => badValue(filters, Effect.flatMap(where(SWITCH_FIELDS, filters), repo.switches)),
    ansible,
    register,
    addMachine: (m) => Effect.map(insert(m), toWire),
    updateMachine,
    deleteMachine,
    addSwitch,
    deleteSwitch,
    settings: Effect.map(repo.settings(), (rows) => rows.map(settingValue)),
    setSetting
  })
})

/** The MDB service over the node's database (needs the pool and the change log). */
export const layer: Layer.Layer<Mdb, never, SqlClient.SqlClient | ChangeLog> = Layer.effect(Mdb, make).pipe(
  Layer.provide(MdbRepo.layer)
)
