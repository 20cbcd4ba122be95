import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { roleNames } from "../../src/roles.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"
import { dropInRoles, installPrefix, lastSetting, roleSettings, systemdDir, unitSettings } from "./install-files.js"

// etc/systemd: `systemd-analyze verify` on every role's unit, in a temporary root that holds
// the system's own units (targets), ours as an operator installs them, and the real binaries
// at the installed paths. No systemd needs to run: verify and `security --offline` read files.

const run = (argv: ReadonlyArray<string>) => Effect.runPromise(runTool(argv))
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-units-"))
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

const template = path.join(systemdDir, "prolo-node@.service")
const execPaths = (): ReadonlyArray<string> =>
  [template, ...dropInRoles().map((r) => path.join(systemdDir, `prolo-node@${r}.service.d`))]
    .flatMap((f) => (fs.statSync(f).isDirectory() ? fs.readdirSync(f).map((n) => path.join(f, n)) : [f]))
    .flatMap(unitSettings)
    .filter(([k]) => k === "ExecStart")
    .map(([, v]) => v.split(/\s+/)[0] ?? "")

/** A root with the system units, ours installed, and the binaries the units start. */
const makeRoot = (name: string): string => {
  const root = path.join(scratch, name)
  fs.cpSync("/usr/lib/systemd/system", path.join(root, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true })
  fs.cpSync(systemdDir, path.join(root, "etc/systemd/system"), { recursive: true })
  for (const exec of execPaths()) {
    const target = path.join(root, exec)
    fs.mkdirSync(path.dirname(target), { recursive: true })
    fs.copyFileSync(path.join(checkout, path.relative(installPrefix, exec)), target)
    fs.chmodSync(target, fs.statSync(path.join(checkout, path.relative(installPrefix, exec))).mode)
  }
  return root
}

const verify = (root: string, role: string) => run(["systemd-analyze", "verify", "--man=no", `--root=${root}`, `prolo-node@${role}.service`])

let root: string
beforeAll(() => {
  root = makeRoot("installed")
})

describe("etc/systemd: prolo-node@<role>", () => {
  it("has a drop-in for every machine role of src/roles.ts", () => {
    expect(dropInRoles()).toEqual([...roleNames].sort())
  })

  it("starts the checkout's own binary at its installed path", () => {
    const execs = execPaths()
    expect(execs).toEqual([`${installPrefix}/bin/prolo-node.js`])
    for (const exec of execs) {
      const file = path.join(checkout, path.relative(installPrefix, exec))
      expect(fs.statSync(file).mode & 0o111, file).not.toBe(0)
    }
  })

  it.each([...roleNames])("systemd-analyze verify passes on prolo-node@%s, without a warning", async (role) => {
    const result = await verify(root, role)
    expect(result.output).toBe("")
    expect(result.code).toBe(0)
  })

  it("systemd-analyze verify reports a bad setting in a drop-in and a missing binary (the check can fail)", async () => {
    const broken = makeRoot("broken")
    fs.writeFileSync(path.join(broken, "etc/systemd/system/prolo-node@web.service.d/zz-typo.conf"), "[Service]\nProtectSystem=stirct\n")
    const typo = await verify(broken, "web")
    expect(typo.output).toContain("zz-typo.conf:2: Failed to parse protect system value")
    fs.rmSync(path.join(broken, installPrefix.slice(1), "bin/prolo-node.js"))
    const missing = await verify(broken, "gw")
    expect(missing.output).toContain(`${installPrefix}/bin/prolo-node.js`)
    expect(missing.code).not.toBe(0)
  })

  it("runs web as the dedicated user without capabilities, the others as root with a bounded set", () => {
    const allowed = new Set(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_NET_ADMIN"])
    for (const role of roleNames) {
      const s = roleSettings(role)
      expect(lastSetting(s, "NoNewPrivileges"), role).toBe("yes")
      expect(lastSetting(s, "ProtectSystem"), role).toBe("strict")
      expect(lastSetting(s, "PrivateTmp"), role).toBe("yes")
      expect(lastSetting(s, "PrivateDevices"), role).toBe("yes")
      const caps = (lastSetting(s, "CapabilityBoundingSet") ?? "").split(/\s+/).filter((c) => c !== "")
      if (role === "web") {
        expect(lastSetting(s, "User")).toBe("prolo")
        expect(caps).toEqual([])
      } else {
        expect(lastSetting(s, "User"), role).toBe("root")
        expect(caps.length, role).toBeGreaterThan(0)
        expect(caps.filter((c) => !allowed.has(c)), role).toEqual([])
      }
    }
    expect(lastSetting(roleSettings("gw"), "CapabilityBoundingSet")).toContain("CAP_NET_ADMIN")
  })

  it("systemd-analyze security --offline: every role's exposure is low (web lowest)", async () => {
    const levels: Record<string, number> = {}
    for (const role of roleNames) {
      const result = await run(["systemd-analyze", "security", "--offline=yes", `--root=${root}`, "--no-pager", `prolo-node@${role}.service`])
      const m = /Overall exposure level for prolo-node@\S+: ([0-9.]+)/.exec(result.output)
      expect(m, result.output).not.toBeNull()
      levels[role] = Number(m?.[1])
    }
    console.log(`exposure (0 best, 10 worst): ${Object.entries(levels).map(([r, l]) => `${r} ${l}`).join(", ")}`)
    for (const role of roleNames) expect(levels[role], role).toBeLessThanOrEqual(3)
    expect(levels.web).toBeLessThan(Math.min(...roleNames.filter((r) => r !== "web").map((r) => levels[r] ?? 0)))
  })

  it("systemd-sysusers creates the user the web role runs as", async () => {
    const sysRoot = path.join(scratch, "sysusers")
    fs.mkdirSync(path.join(sysRoot, "etc"), { recursive: true })
    const result = await run(["systemd-sysusers", `--root=${sysRoot}`, path.join(checkout, "etc/sysusers.d/prolo.conf")])
    expect(result.code).toBe(0)
    const passwd = fs.readFileSync(path.join(sysRoot, "etc/passwd"), "utf8")
    const user = lastSetting(roleSettings("web"), "User")
    expect(passwd).toMatch(new RegExp(`^${user}:x:\\d+:\\d+:[^:]*:/var/lib/prolo:/usr/sbin/nologin$`, "m"))
  })
})
