import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { hostBlock, renderDhcpdConf, renderHosts, STATIC_PART } from "../../src/actors/dhcp/render.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { Effect } from "effect"
import { gwMachine } from "../mdb/fixtures.js"

// dhcpd.conf as spec mdb.md §5 shows it, and accepted by the real `dhcpd -t`.

const user = { hostname: "pas-r01p01", mac: "aa:bb:cc:dd:ee:ff", ip: "192.168.0.12" }

describe("dhcpd.conf", () => {
  it("host blocks are the original's, TAB-indented, separated by an empty line", () => {
    expect(hostBlock(user)).toBe('host pas-r01p01 {\n\thardware ethernet aa:bb:cc:dd:ee:ff;\n\tfixed-address 192.168.0.12;\n\toption host-name "pas-r01p01";\n}\n')
    expect(renderHosts([gwMachine, user]).text).toBe(`${hostBlock(gwMachine)}\n${hostBlock(user)}`)
  })

  it("the static part: 14400 s leases, iPXE options, boot file per subnet, alien pool .1-.200 with 30 s leases and the alien scriptlet", () => {
    expect(STATIC_PART).toContain("default-lease-time 14400;\nmax-lease-time 14400;\nauthoritative;\n")
    expect(STATIC_PART).toContain("\tsubnet 192.168.1.0 netmask 255.255.255.0 {\n\t\toption subnet-mask 255.255.254.0;\n\t\tfilename \"arch.kpxe\";\n\t\tdeny unknown-clients;\n\t}")
    expect(STATIC_PART).toContain("\tsubnet 192.168.0.0 netmask 255.255.255.0 {\n\t\toption subnet-mask 255.255.254.0;\n\t\tfilename \"prologin.kpxe\";\n\t\tdeny unknown-clients;\n\t}")
    expect(STATIC_PART).toContain(
      '\t\tdefault-lease-time 30;\n\t\tmax-lease-time 30;\n\t\toption ipxe.scriptlet "alien";\n\t\toption routers 192.168.250.254;\n\t\toption domain-name-servers 192.168.250.254;\n\t\tnext-server 192.168.250.254;\n\t\tfilename "prologin.kpxe";\n\t\tpool {\n\t\t\trange 192.168.250.1 192.168.250.200;\n\t\t\tallow unknown-clients;\n\t\t}'
    )
  })

  it("leaves out what dhcpd would refuse: non-IPv4, non-hex MAC, a host name declared twice", () => {
    const { text, skipped } = renderHosts([
      user,
      { hostname: "v6", mac: "aa:bb:cc:dd:ee:01", ip: "fe80::1" },
      { hostname: "zz", mac: "zz:bb:cc:dd:ee:02", ip: "192.168.0.2" },
      { ...user, mac: "aa:bb:cc:dd:ee:03" }
    ])
    expect(text).toBe(hostBlock(user))
    expect(skipped.map((s) => s.reason)).toEqual([
      'address "fe80::1" is not IPv4',
      'MAC "zz:bb:cc:dd:ee:02" is not hexadecimal',
      "a host of that name is already declared"
    ])
  })

  it("dhcpd -t accepts the whole file", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-dhcp-"))
    try {
      const file = path.join(dir, "dhcpd.conf")
      await fs.writeFile(file, renderDhcpdConf([gwMachine, user, { hostname: "master.cl", mac: "aa:bb:cc:dd:ee:10", ip: "192.168.2.1" }]).text)
      const r = await Effect.runPromise(runTool(["dhcpd", "-t", "-q", "-cf", file]))
      expect(r).toMatchObject({ code: 0 })
    } finally {
      await fs.rm(dir, { recursive: true, force: true })
    }
  })
})
