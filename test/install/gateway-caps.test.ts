import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { runTool } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"
import { skipUnlessRoot } from "../support/root.js"
import { lastSetting, roleSettings } from "./install-files.js"

// The gateway unit's capability set is enough for what its firewall runs (firewall.yml's
// production `ipset` and `rules`), and each capability it names is needed: the real ipset and
// iptables-restore load etc/firewall/iptables.rules in a network namespace of the test's own
// (`unshare -n`: the host's firewall is never touched), as root limited to the drop-in's
// CapabilityBoundingSet the way systemd limits the unit.

const run = (argv: ReadonlyArray<string>) => Effect.runPromise(runTool(argv))
const rules = path.join(checkout, "etc/firewall/iptables.rules")

/** setpriv's `--bounding-set` value for a list of CAP_ names. */
const bounding = (caps: ReadonlyArray<string>) => ["-all", ...caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(",")

/** In a fresh network namespace, with only `caps`: create the set, then load the rules. */
const loadFirewall = (caps: ReadonlyArray<string>) => {
  const limited = `setpriv --bounding-set ${bounding(caps)} --inh-caps -all`
  const script = [
    `${limited} ipset create allowed-internet-access hash:ip family inet`,
    `${limited} iptables-restore ${rules}`,
    // What got loaded: the set match and the NAT rule are there.
    "iptables-save"
  ].join(" && ")
  return run(["unshare", "-n", "sh", "-c", script])
}

const gwCaps = (lastSetting(roleSettings("gw"), "CapabilityBoundingSet") ?? "").split(/\s+/).filter((c) => c !== "")

describe("prolo-node@gw's capabilities and the firewall", () => {
  it("names CAP_NET_ADMIN and CAP_NET_RAW", () => {
    expect(gwCaps).toEqual(expect.arrayContaining(["CAP_NET_ADMIN", "CAP_NET_RAW"]))
  })

  it("ipset and iptables-restore load etc/firewall/iptables.rules with exactly the unit's set", async () => {
    if (skipUnlessRoot("unshare -n, ipset, iptables-restore")) return
    const loaded = await loadFirewall(gwCaps)
    expect(loaded.code, loaded.output).toBe(0)
    expect(loaded.output).toContain("--match-set allowed-internet-access src -j ACCEPT")
    expect(loaded.output).toContain("-A POSTROUTING -o uplink -j MASQUERADE")
  })

  it("without CAP_NET_RAW iptables-restore fails on the set match; without CAP_NET_ADMIN ipset fails", async () => {
    if (skipUnlessRoot("unshare -n, ipset, iptables-restore")) return
    const noRaw = await loadFirewall(gwCaps.filter((c) => c !== "CAP_NET_RAW"))
    expect(noRaw.output).toContain("Can't open socket to ipset")
    expect(noRaw.code).not.toBe(0)
    const noAdmin = await loadFirewall(gwCaps.filter((c) => c !== "CAP_NET_ADMIN"))
    expect(noAdmin.output).toMatch(/ipset v[\d.]+: .*(permission|not permitted)/i)
    expect(noAdmin.code).not.toBe(0)
  })
})
