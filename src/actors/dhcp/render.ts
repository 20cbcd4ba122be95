import type { Machine } from "../../protocols/mdb.js"
import { isIpv4 } from "../dns/render.js"

// dhcpd.conf of the gateway (spec mdb.md §5): the ansible role's static part (leases, the iPXE
// option space, the `prolo-lan` shared network with its three subnets) followed by the original
// mdbdhcp's host blocks. One file, so that what `dhcpd -t` checks is exactly what is swapped in.

/** The iPXE options dhcpd must know to send `ipxe.no-pxedhcp` and the `alien` scriptlet. */
const IPXE_OPTIONS = [
  "option space ipxe;",
  "option ipxe-encap-opts code 175 = encapsulate ipxe;",
  "option ipxe.priority code 1 = signed integer 8;",
  "option ipxe.keep-san code 8 = unsigned integer 8;",
  "option ipxe.skip-san-boot code 9 = unsigned integer 8;",
  "option ipxe.syslogs code 85 = string;",
  "option ipxe.cert code 91 = string;",
  "option ipxe.privkey code 92 = string;",
  "option ipxe.crosscert code 93 = string;",
  "option ipxe.no-pxedhcp code 176 = unsigned integer 8;",
  "option ipxe.bus-id code 177 = string;",
  "option ipxe.san-filename code 188 = string;",
  "option ipxe.bios-drive code 189 = unsigned integer 8;",
  "option ipxe.username code 190 = string;",
  "option ipxe.password code 191 = string;",
  "option ipxe.reverse-username code 192 = string;",
  "option ipxe.reverse-password code 193 = string;",
  "option ipxe.version code 235 = string;",
  "option ipxe.scriptlet code 81 = string;"
]

export const STATIC_PART = [
  "# THIS IS A GENERATED FILE",
  "# Do not modify it manually - see prolo dhcp",
  "default-lease-time 14400;",
  "max-lease-time 14400;",
  "authoritative;",
  "",
  ...IPXE_OPTIONS,
  "",
  "shared-network prolo-lan {",
  "\toption ipxe.no-pxedhcp 1;",
  '\toption domain-name "prolo";',
  "\toption routers 192.168.1.254;",
  "\toption domain-name-servers 192.168.1.254;",
  "\tnext-server 192.168.1.254;",
  "",
  "\t# servers",
  "\tsubnet 192.168.1.0 netmask 255.255.255.0 {",
  "\t\toption subnet-mask 255.255.254.0;",
  '\t\tfilename "arch.kpxe";',
  "\t\tdeny unknown-clients;",
  "\t}",
  "",
  "\t# users",
  "\tsubnet 192.168.0.0 netmask 255.255.255.0 {",
  "\t\toption subnet-mask 255.255.254.0;",
  '\t\tfilename "prologin.kpxe";',
  "\t\tdeny unknown-clients;",
  "\t}",
  "",
  "\t# aliens (unknown MACs): registration menu",
  "\tsubnet 192.168.250.0 netmask 255.255.255.0 {",
  "\t\tdefault-lease-time 30;",
  "\t\tmax-lease-time 30;",
  '\t\toption ipxe.scriptlet "alien";',
  "\t\toption routers 192.168.250.254;",
  "\t\toption domain-name-servers 192.168.250.254;",
  "\t\tnext-server 192.168.250.254;",
  '\t\tfilename "prologin.kpxe";',
  "\t\tpool {",
  "\t\t\trange 192.168.250.1 192.168.250.200;",
  "\t\t\tallow unknown-clients;",
  "\t\t}",
  "\t}",
  "}",
  ""
].join("\n")

// What dhcpd's parser takes in a host block: a MAC of hex pairs (MDB also accepts g-z), MDB's
// own host name pattern (checked again: the topic's records are input), and each host name once
// (`dhcpd -t` refuses a second `host` of the same name).
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/
const HOST = /^[a-z0-9-]+(\.[a-z0-9]+)?$/

export interface Skipped {
  readonly hostname: string
  readonly reason: string
}

/** The original's host block, TAB-indented. */
export const hostBlock = (m: Pick<Machine, "hostname" | "mac" | "ip">): string =>
  `host ${m.hostname} {\n\thardware ethernet ${m.mac};\n\tfixed-address ${m.ip};\n\toption host-name "${m.hostname}";\n}\n`

/** Host blocks of every machine (all mtypes, in the order given), blocks separated by an empty line. */
export const renderHosts = (machines: Iterable<Pick<Machine, "hostname" | "mac" | "ip">>): { text: string; skipped: ReadonlyArray<Skipped> } => {
  const blocks: Array<string> = []
  const skipped: Array<Skipped> = []
  const seen = new Set<string>()
  for (const m of machines) {
    const reason = seen.has(m.hostname)
      ? "a host of that name is already declared"
      : !isIpv4(m.ip)
      ? `address ${JSON.stringify(m.ip)} is not IPv4`
      : !MAC.test(m.mac)
        ? `MAC ${JSON.stringify(m.mac)} is not hexadecimal`
        : !HOST.test(m.hostname)
          ? `host name ${JSON.stringify(m.hostname)} is not one dhcpd accepts`
          : undefined
    if (reason === undefined) {
      seen.add(m.hostname)
      blocks.push(hostBlock(m))
    } else skipped.push({ hostname: m.hostname, reason })
  }
  return { text: blocks.join("\n"), skipped }
}

export const renderDhcpdConf = (machines: Iterable<Pick<Machine, "hostname" | "mac" | "ip">>) => {
  const hosts = renderHosts(machines)
  return { text: `${STATIC_PART}\n${hosts.text}`, skipped: hosts.skipped }
}
