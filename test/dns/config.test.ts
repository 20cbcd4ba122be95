import { describe, expect, it } from "vitest"
import { Either, Schema } from "effect"
import { DhcpProfile } from "../../src/actors/dhcp/config.js"
import { DnsProfile } from "../../src/actors/dns/config.js"
import { NetbootProfile } from "../../src/actors/netboot/layer.js"

// dns.yml, dhcp.yml, netboot.yml: defaults that touch nothing of the machine, and a clear
// refusal of a wrong type or an unknown key (the node then stops with one line naming it).

const decode = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknownEither(schema)

describe("gateway service profiles", () => {
  it("empty profiles: write into the data directory, reload and restart nothing", () => {
    expect(decode(DnsProfile)({})).toEqual(
      Either.right({ named_checkzone: ["named-checkzone"], named_checkconf: ["named-checkconf"], reload_window_ms: 100 })
    )
    expect(decode(DhcpProfile)({})).toEqual(Either.right({ dhcpd: ["dhcpd"], restart_window_ms: 100 }))
  })

  it("refuses a command given as a string, an empty command, an unknown key, a missing netboot option", () => {
    expect(Either.isLeft(decode(DnsProfile)({ rndc: "rndc reload" }))).toBe(true)
    expect(Either.isLeft(decode(DnsProfile)({ rndc: [] }))).toBe(true)
    expect(Either.isLeft(decode(DnsProfile)({ rndc_command: ["rndc"] }))).toBe(true)
    expect(Either.isLeft(decode(DhcpProfile)({ restart: [""] }))).toBe(true)
    expect(Either.isLeft(decode(DnsProfile)({ reload_window_ms: 0 }))).toBe(true)
    expect(Either.isLeft(decode(NetbootProfile)({ fallback: true }))).toBe(true)
    expect(decode(NetbootProfile)({ options: "root=/dev/nfs" })).toEqual(Either.right({ options: "root=/dev/nfs", fallback: true }))
  })
})
