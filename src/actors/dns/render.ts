import type { Machine } from "../../protocols/mdb.js"

// The six BIND zones of the original mdbdns (spec mdb.md §4), as pure functions: a zone's
// records from the machines, and the file text from the records and a serial. The serial is
// kept out of the records so that "did this zone change?" compares records only.

export interface ZoneSpec {
  /** File name suffix: `generated_<name>.zone`. */
  readonly name: string
  /** The zone's origin as BIND names it (and `named-checkzone` checks it). */
  readonly origin: string
  /** The view that loads it (`rndc reload <origin> IN <view>`). */
  readonly view: "alien" | "normal"
}

/** In the original's order. */
export const ZONES: ReadonlyArray<ZoneSpec> = [
  { name: "250.168.192.in-addr.arpa", origin: "250.168.192.in-addr.arpa", view: "normal" },
  { name: "0.168.192.in-addr.arpa", origin: "0.168.192.in-addr.arpa", view: "normal" },
  { name: "1.168.192.in-addr.arpa", origin: "1.168.192.in-addr.arpa", view: "normal" },
  { name: "2.168.192.in-addr.arpa", origin: "2.168.192.in-addr.arpa", view: "normal" },
  { name: "prolo_alien", origin: "prolo", view: "alien" },
  { name: "prolo_normal", origin: "prolo", view: "normal" }
]

export const zoneFileName = (zone: ZoneSpec): string => `generated_${zone.name}.zone`

const HEADER = (serial: number) =>
  [
    "; THIS IS A GENERATED FILE",
    "; Do not modify it manually - see mdbdns.py",
    "$TTL\t10",
    "@\tIN\tSOA\tns.prolo.\thostmaster.ns.prolo.\t(",
    `\t\t\t${serial} ; @@SERIAL@@`,
    "\t\t\t1200 ; Refresh",
    "\t\t\t60 ; Retry",
    "\t\t\t360000 ; Expire",
    "\t\t\t10 ); Negative TTL",
    "\t\tNS\tns.prolo.",
    "",
    "; Auto-generated zone",
    ""
  ].join("\n")

/**
 * Whether the records give `ns.prolo` (the zones' NS, the gateway's alias `ns`) an address.
 * Without it BIND refuses the zone `prolo`: it is the state of a site before its gateway is
 * registered in MDB, not an error, so the writer waits rather than producing a refused file.
 */
export const hasNameServer = (records: string): boolean => /^ns\tIN\tA\t/m.test(records)

/** The records part of a zone file: one TAB-joined line each, ending with one `\n`. */
export const recordsText = (records: ReadonlyArray<ReadonlyArray<string>>): string =>
  `${records.map((r) => r.join("\t")).join("\n")}\n`

export const zoneText = (records: string, serial: number): string => `${HEADER(serial)}${records}`

/** The original's serial parser: the number between the last TAB before `@@SERIAL@@` and the next space. */
export const parseSerial = (text: string): number | undefined => {
  const at = text.indexOf("@@SERIAL@@")
  if (at < 0) return undefined
  const tab = text.lastIndexOf("\t", at)
  const space = text.indexOf(" ", tab)
  const n = Number(text.slice(tab + 1, space))
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/** The records part of a file we wrote (what follows the header), to compare with a new rendering. */
export const recordsOf = (text: string): string | undefined => {
  const marker = "; Auto-generated zone\n"
  const at = text.indexOf(marker)
  return at < 0 ? undefined : text.slice(at + marker.length)
}

// A host name BIND accepts under `check-names fail` (what named applies to primary zones):
// labels of 1-63 letters, digits or hyphens, not starting or ending with a hyphen. MDB's own
// pattern lets through what BIND refuses (a 64-character label, a leading hyphen); such a name
// is left out of the zone instead of making BIND refuse the whole zone.
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
export const isDnsName = (name: string): boolean => name.split(".").every((l) => LABEL.test(l))

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
export const isIpv4 = (ip: string): boolean => IPV4.test(ip)

export const namesOf = (m: Pick<Machine, "hostname" | "aliases">): ReadonlyArray<string> => [
  m.hostname,
  ...m.aliases.split(",").map((a) => a.trim()).filter((a) => a !== "")
]

export interface Skipped {
  readonly hostname: string
  readonly reason: string
}

export interface RenderedZones {
  /** Records text per zone name (`ZoneSpec.name`). */
  readonly records: ReadonlyMap<string, string>
  readonly skipped: ReadonlyArray<Skipped>
}

type Host = Pick<Machine, "hostname" | "aliases" | "ip" | "mtype">

/**
 * The records of every zone, machines in the order given (the sync state's order, as the
 * original). PTR records go to the reverse zone of the address's /24 (for correct data the
 * same as the original's by-machine-type grouping, and never a PTR in a zone that does not
 * hold the address); an address outside the three /24s gets only its A records.
 */
export const renderZones = (machines: Iterable<Host>): RenderedZones => {
  const alienReverse: Array<Array<string>> = []
  for (let i = 1; i <= 253; i++) alienReverse.push([String(i), "IN", "PTR", `unknown-${i}.alien.prolo.`])
  alienReverse.push(["254", "IN", "PTR", "gw.alien.prolo."])
  const reverse: Record<string, Array<Array<string>>> = { "0": [], "1": [], "2": [] }
  const forward: Array<Array<string>> = []
  const skipped: Array<Skipped> = []
  for (const m of machines) {
    if (!isIpv4(m.ip)) {
      skipped.push({ hostname: m.hostname, reason: `address ${JSON.stringify(m.ip)} is not IPv4` })
      continue
    }
    for (const name of namesOf(m)) {
      if (isDnsName(name)) forward.push([name, "IN", "A", m.ip])
      else skipped.push({ hostname: m.hostname, reason: `name ${JSON.stringify(name)} is not a valid DNS name` })
    }
    const octets = m.ip.split(".")
    const zone = octets.slice(0, 3).join(".") === `192.168.${octets[2]}` ? reverse[octets[2]!] : undefined
    if (zone !== undefined && isDnsName(m.hostname)) zone.push([octets[3]!, "IN", "PTR", `${m.hostname}.prolo.`])
  }
  const records = new Map<string, string>([
    ["250.168.192.in-addr.arpa", recordsText(alienReverse)],
    ["0.168.192.in-addr.arpa", recordsText(reverse["0"]!)],
    ["1.168.192.in-addr.arpa", recordsText(reverse["1"]!)],
    ["2.168.192.in-addr.arpa", recordsText(reverse["2"]!)],
    ["prolo_alien", recordsText([["netboot", "IN", "A", "192.168.250.254"], ["ns", "IN", "A", "192.168.250.254"]])],
    ["prolo_normal", recordsText(forward)]
  ])
  return { records, skipped }
}

/**
 * The views of the original's named.conf (ansible `bind` role) over our zone files: aliens
 * (192.168.250.0/24) see only `prolo` from the alien zone; everyone else the generated zones.
 * Root hints and the localhost zones stay in the distribution's own config.
 */
export const namedViews = (dir: string): string => {
  const zone = (z: ZoneSpec) => `\tzone "${z.origin}" IN {\n\t\ttype master;\n\t\tfile "${dir}/${zoneFileName(z)}";\n\t};\n`
  const alien = ZONES.filter((z) => z.view === "alien")
  const normal = ZONES.filter((z) => z.view === "normal")
  return [
    "// THIS IS A GENERATED FILE (prolo dns)",
    `view "alien" {\n\tmatch-clients { 192.168.250.0/24; };\n${alien.map(zone).join("")}};`,
    `view "normal" {\n\tmatch-clients { any; };\n${normal.map(zone).join("")}};`,
    ""
  ].join("\n")
}
