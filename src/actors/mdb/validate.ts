import { Effect } from "effect"
import { InvalidField, MTYPES, type Mtype, ROOMS, type Room } from "../../protocols/mdb.js"

// Input checks with one clear message per field. The database enforces the same rules
// (see migrations/0002_mdb.ts) as a backstop.

// One DNS label of a-z, 0-9 and inner '-', plus the original's optional second label
// (`master.cl`). A hostname with '_' once broke BIND (2014): refused.
const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]+)?$/
const MAX_NAME = 63
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/

const invalid = (field: string, value: unknown, message: string) =>
  new InvalidField({ field, value: typeof value === "string" ? value : JSON.stringify(value) ?? String(value), message })

export const checkName = (field: "hostname" | "alias" | "name", value: string): Effect.Effect<string, InvalidField> => {
  if (value.length === 0) return Effect.fail(invalid(field, value, `${field} is empty`))
  if (value.length > MAX_NAME) return Effect.fail(invalid(field, value, `${field} '${value}' is longer than ${MAX_NAME} characters`))
  if (value.includes("_")) {
    return Effect.fail(invalid(field, value, `${field} '${value}': '_' is not allowed in DNS names (use '-')`))
  }
  if (value !== value.toLowerCase()) {
    return Effect.fail(invalid(field, value, `${field} '${value}' must be lower case`))
  }
  if (!NAME.test(value)) {
    return Effect.fail(
      invalid(
        field,
        value,
        `${field} '${value}' is not a valid DNS name: letters a-z, digits and inner '-', optionally one '.suffix' (e.g. pas-r01p01, master.cl)`
      )
    )
  }
  return Effect.succeed(value)
}

/** The comma-separated aliases of `hostname`: each a valid name, distinct, not the hostname. */
export const checkAliases = (hostname: string, text: string): Effect.Effect<ReadonlyArray<string>, InvalidField> =>
  Effect.gen(function* () {
    const aliases = text
      .split(",")
      .map((a) => a.trim())
      .filter((a) => a !== "")
    const seen = new Set<string>()
    for (const alias of aliases) {
      yield* checkName("alias", alias)
      if (alias === hostname) return yield* invalid("aliases", text, `alias '${alias}' repeats the machine's hostname`)
      if (seen.has(alias)) return yield* invalid("aliases", text, `alias '${alias}' is listed twice`)
      seen.add(alias)
    }
    return aliases
  })

/** MACs are stored lower case; `-` separators are accepted and turned into `:`. */
export const normaliseMac = (field: "mac" | "chassis", value: string): Effect.Effect<string, InvalidField> => {
  const mac = value.trim().toLowerCase().replaceAll("-", ":")
  return MAC.test(mac)
    ? Effect.succeed(mac)
    : Effect.fail(invalid(field, value, `${field} '${value}' is not a MAC address (six hex pairs, e.g. 11:22:33:44:55:66)`))
}

export const checkMtype = (value: string): Effect.Effect<Mtype, InvalidField> =>
  (MTYPES as ReadonlyArray<string>).includes(value)
    ? Effect.succeed(value as Mtype)
    : Effect.fail(invalid("mtype", value, `unknown mtype '${value}' (expected one of ${MTYPES.join(", ")})`))

export const checkRoom = (value: string): Effect.Effect<Room, InvalidField> =>
  (ROOMS as ReadonlyArray<string>).includes(value)
    ? Effect.succeed(value as Room)
    : Effect.fail(invalid("room", value, `unknown room '${value}' (expected one of ${ROOMS.join(", ")})`))

export const checkServerId = (field: "rfs" | "hfs", value: number): Effect.Effect<number, InvalidField> =>
  Number.isSafeInteger(value) && value >= 0 && value < 2 ** 31
    ? Effect.succeed(value)
    : Effect.fail(invalid(field, value, `${field} must be a non-negative integer, got ${value}`))

export const checkDetails = (value: string): Effect.Effect<string, InvalidField> =>
  value.length <= 4096
    ? Effect.succeed(value)
    : Effect.fail(invalid("is_faulty_details", value.slice(0, 40), "is_faulty_details is longer than 4096 characters"))

// ---- IPv4 ------------------------------------------------------------------------------

export const ipToInt = (ip: string): number => ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0)
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".")

export interface Pool {
  /** The pool's own name (`user`, `service`, `cluster`). */
  readonly mtype: string
  /** CIDR, e.g. `192.168.0.0/24`. */
  readonly network: string
}

const range = (pool: Pool): { readonly first: number; readonly last: number } => {
  const [base = "", bits = "32"] = pool.network.split("/")
  const size = 2 ** (32 - Number(bits))
  const network = ipToInt(base) - (ipToInt(base) % size)
  return { first: network, last: network + size - 1 }
}

/** Which pool a machine type allocates from: orga machines share the user pool (as the original). */
export const poolOf = (mtype: Mtype): string => (mtype === "orga" ? "user" : mtype)

/** A manually given IP: dotted IPv4, inside the pool of the machine's type, not its network or broadcast address. */
export const checkIp = (value: string, mtype: Mtype, pool: Pool): Effect.Effect<string, InvalidField> => {
  const ip = value.trim()
  if (!IPV4.test(ip)) return Effect.fail(invalid("ip", value, `ip '${value}' is not a dotted IPv4 address`))
  const n = ipToInt(ip)
  const { first, last } = range(pool)
  if (n < first || n > last) {
    return Effect.fail(invalid("ip", value, `ip ${ip} is outside the ${pool.mtype} pool ${pool.network} of mtype ${mtype}`))
  }
  if (n === first || n === last) {
    return Effect.fail(invalid("ip", value, `ip ${ip} is the ${n === first ? "network" : "broadcast"} address of ${pool.network}`))
  }
  return Effect.succeed(ip)
}
