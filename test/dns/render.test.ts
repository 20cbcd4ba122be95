import { describe, expect, it } from "vitest"
import { isDnsName, namedViews, parseSerial, recordsOf, renderZones, ZONES, zoneText } from "../../src/actors/dns/render.js"
import { gwMachine } from "../mdb/fixtures.js"

// The zone files of spec mdb.md §4, TAB for TAB.

const HEADER = (serial: number) =>
  "; THIS IS A GENERATED FILE\n" +
  "; Do not modify it manually - see mdbdns.py\n" +
  "$TTL\t10\n" +
  "@\tIN\tSOA\tns.prolo.\thostmaster.ns.prolo.\t(\n" +
  `\t\t\t${serial} ; @@SERIAL@@\n` +
  "\t\t\t1200 ; Refresh\n" +
  "\t\t\t60 ; Retry\n" +
  "\t\t\t360000 ; Expire\n" +
  "\t\t\t10 ); Negative TTL\n" +
  "\t\tNS\tns.prolo.\n" +
  "\n" +
  "; Auto-generated zone\n"

const user = { hostname: "pas-r01p01", aliases: "", ip: "192.168.0.12", mtype: "user" as const }
const orga = { hostname: "master.cl", aliases: " web , ", ip: "192.168.0.40", mtype: "orga" as const }
const node = { hostname: "cl-01", aliases: "", ip: "192.168.2.1", mtype: "cluster" as const }

describe("dns zones", () => {
  it("renders the six zones of the spec, in its order", () => {
    const { records, skipped } = renderZones([gwMachine, user, orga, node])
    expect(skipped).toEqual([])
    expect([...records.keys()]).toEqual(ZONES.map((z) => z.name))
    expect(zoneText(records.get("prolo_normal")!, 7)).toBe(
      HEADER(7) +
        "gw\tIN\tA\t192.168.1.254\n" +
        gwMachine.aliases.split(",").map((a) => `${a}\tIN\tA\t192.168.1.254\n`).join("") +
        "pas-r01p01\tIN\tA\t192.168.0.12\n" +
        "master.cl\tIN\tA\t192.168.0.40\n" +
        "web\tIN\tA\t192.168.0.40\n" +
        "cl-01\tIN\tA\t192.168.2.1\n"
    )
    expect(zoneText(records.get("0.168.192.in-addr.arpa")!, 1)).toBe(
      HEADER(1) + "12\tIN\tPTR\tpas-r01p01.prolo.\n40\tIN\tPTR\tmaster.cl.prolo.\n"
    )
    expect(records.get("1.168.192.in-addr.arpa")).toBe("254\tIN\tPTR\tgw.prolo.\n")
    expect(records.get("2.168.192.in-addr.arpa")).toBe("1\tIN\tPTR\tcl-01.prolo.\n")
    expect(records.get("prolo_alien")).toBe("netboot\tIN\tA\t192.168.250.254\nns\tIN\tA\t192.168.250.254\n")
    const alien = records.get("250.168.192.in-addr.arpa")!.split("\n")
    expect(alien.slice(0, 2)).toEqual(["1\tIN\tPTR\tunknown-1.alien.prolo.", "2\tIN\tPTR\tunknown-2.alien.prolo."])
    expect(alien.slice(-3)).toEqual(["253\tIN\tPTR\tunknown-253.alien.prolo.", "254\tIN\tPTR\tgw.alien.prolo.", ""])
  })

  it("an empty zone is the header and a blank line", () => {
    expect(zoneText(renderZones([]).records.get("prolo_normal")!, 1)).toBe(`${HEADER(1)}\n`)
  })

  it("reads back the serial and the records of a file it wrote", () => {
    const text = zoneText("a\tIN\tA\t192.168.0.1\n", 41)
    expect(parseSerial(text)).toBe(41)
    expect(recordsOf(text)).toBe("a\tIN\tA\t192.168.0.1\n")
    expect(parseSerial("no serial here")).toBeUndefined()
  })

  it("leaves out what BIND would refuse instead of breaking the zone: non-IPv4 addresses, bad labels", () => {
    const long = "a".repeat(64)
    const { records, skipped } = renderZones([
      { hostname: "v6", aliases: "", ip: "fe80::1", mtype: "user" },
      { hostname: long, aliases: "-bad,ok", ip: "192.168.0.9", mtype: "user" }
    ])
    expect(records.get("prolo_normal")).toBe("ok\tIN\tA\t192.168.0.9\n")
    expect(records.get("0.168.192.in-addr.arpa")).toBe("\n")
    expect(skipped.map((s) => s.reason)).toEqual([
      'address "fe80::1" is not IPv4',
      `name ${JSON.stringify(long)} is not a valid DNS name`,
      'name "-bad" is not a valid DNS name'
    ])
    expect(isDnsName("a-b.c1")).toBe(true)
    expect(isDnsName("a_b")).toBe(false)
  })

  it("an address outside the three /24s gets its A records only", () => {
    const { records } = renderZones([{ hostname: "laptop", aliases: "", ip: "10.0.0.5", mtype: "orga" }])
    expect(records.get("prolo_normal")).toBe("laptop\tIN\tA\t10.0.0.5\n")
    for (const z of ["0", "1", "2"]) expect(records.get(`${z}.168.192.in-addr.arpa`)).toBe("\n")
  })

  it("the views: aliens see only the alien prolo zone", () => {
    const views = namedViews("/etc/named")
    expect(views).toContain('view "alien" {\n\tmatch-clients { 192.168.250.0/24; };\n\tzone "prolo" IN {\n\t\ttype master;\n\t\tfile "/etc/named/generated_prolo_alien.zone";\n\t};\n};')
    expect(views.match(/zone "/g)).toHaveLength(6)
  })
})
