import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ExecutorConfig } from "../../src/actors/worker/config.js"
import { roleNames } from "../../src/roles.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"
import { skipUnlessRoot } from "../support/root.js"
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
    .filter(([k, v]) => k === "ExecStart" && v !== "")
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
    const execs = [...new Set(execPaths())]
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
    const allowed = new Set(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"])
    // The gateway's firewall (ipset, iptables-restore's set match): only it has these two.
    const gwOnly = new Set(["CAP_NET_ADMIN", "CAP_NET_RAW"])
    // The worker drops to `cluster` (setpriv) and ends its jails: only it has these three.
    const workerOnly = new Set(["CAP_SETUID", "CAP_SETGID", "CAP_KILL"])
    // The login helper mounts homes and ends a leaving user's processes (whom it must see in /proc).
    const loginOnly = new Set(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_KILL"])
    for (const role of roleNames) {
      const s = roleSettings(role)
      expect(lastSetting(s, "NoNewPrivileges"), role).toBe("yes")
      if (role !== "login") {
        expect(lastSetting(s, "ProtectSystem"), role).toBe("strict")
        expect(lastSetting(s, "PrivateTmp"), role).toBe("yes")
        expect(lastSetting(s, "PrivateDevices"), role).toBe("yes")
      }
      const caps = (lastSetting(s, "CapabilityBoundingSet") ?? "").split(/\s+/).filter((c) => c !== "")
      if (role === "web") {
        expect(lastSetting(s, "User")).toBe("prolo")
        expect(caps).toEqual([])
      } else {
        expect(lastSetting(s, "User"), role).toBe("root")
        expect(caps.length, role).toBeGreaterThan(0)
        const extra = (c: string) => (role === "worker" && workerOnly.has(c)) || (role === "gw" && gwOnly.has(c)) || (role === "login" && loginOnly.has(c))
        expect(caps.filter((c) => !allowed.has(c) && !extra(c)), role).toEqual([])
      }
    }
    expect(lastSetting(roleSettings("gw"), "CapabilityBoundingSet")).toContain("CAP_NET_ADMIN")
  })

  it("only the worker unit can build jails, and it writes nothing of the system", () => {
    const jailSettings = ["RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectControlGroups"]
    for (const role of roleNames.filter((r) => r !== "worker" && r !== "login")) {
      const s = roleSettings(role)
      expect(jailSettings.map((k) => lastSetting(s, k)), role).toEqual(["yes", "yes", "yes", "yes"])
      expect(lastSetting(s, "SystemCallFilter"), role).toBe("@system-service")
    }
    expect(lastSetting(roleSettings("login"), "RestrictNamespaces")).toBe("yes")
    const w = roleSettings("worker")
    expect(lastSetting(w, "RestrictNamespaces")).toBe("user mnt pid net ipc uts cgroup")
    expect(w.filter(([k]) => k === "SystemCallFilter").map(([, v]) => v)).toContain("@mount pivot_root")
    expect(w.filter(([k]) => k === "ReadWritePaths")).toEqual([])
    expect(lastSetting(w, "StateDirectoryMode")).toBe("0751")
    // Not the user node's /var/lib/prolo, which that unit sets to 0750 at each start.
    expect(lastSetting(w, "StateDirectory")).not.toBe(lastSetting(roleSettings("user"), "StateDirectory"))
    expect(lastSetting(w, "Environment")).toBe(`PROLO_DATA_DIR=/var/lib/${lastSetting(w, "StateDirectory")}`)
    // Its own port: prolo-node@user listens on the template's on the same machine.
    const port = (role: string) => /--listen \S+:(\d+)/.exec(lastSetting(roleSettings(role), "ExecStart") ?? "")?.[1]
    expect(port("user")).toBe("20000")
    expect(port("worker")).toBe("20001")
    expect(port("login")).toBe("20002")
  })

  // systemd.exec: any setting that gives a unit its own mount namespace first turns every mount
  // to slave, so what the unit mounts never reaches the host, whatever MountFlags= says. The
  // login helper's mounts ARE the machine's homes: none of these may be on for it.
  it("gives the login helper no mount namespace, and only the devices homes need", () => {
    const s = roleSettings("login")
    const namespacing = ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups"]
    expect(namespacing.filter((k) => lastSetting(s, k) !== "no")).toEqual([])
    const paths = ["ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory", "RootImage"]
    expect(s.filter(([k]) => paths.includes(k))).toEqual([])
    expect(lastSetting(s, "ProtectProc")).toBe("default")
    expect(s.filter(([k]) => k === "SystemCallFilter").map(([, v]) => v)).toEqual(["@system-service", "@mount"])
    expect(lastSetting(s, "DevicePolicy")).toBe("closed")
    expect(s.filter(([k]) => k === "DeviceAllow").map(([, v]) => v)).toEqual(["/dev/fuse rw", "/dev/loop-control rw", "block-loop rw", "block-nbd rw"])
    expect(lastSetting(s, "KillMode")).toBe("process")
  })

  it("bwrap cannot mount the jail's /proc under ProtectKernelTunables' or ProtectKernelLogs' overmounts (why the worker lifts them)", async () => {
    if (skipUnlessRoot("unshare -m, setpriv to the cluster user, bwrap")) return
    // The jail of src/actors/worker/sandbox/jail.ts, reduced to what matters here.
    const jail = "setpriv --reuid cluster --regid cluster --clear-groups bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev /bin/echo jail-ok"
    const under = (mounts: string) => run(["unshare", "-m", "--propagation", "private", "sh", "-c", `${mounts}${jail}`])
    const bare = await under("")
    expect(bare.output.trim()).toBe("jail-ok")
    for (const overmount of ["mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && ", "mount --bind /dev/null /proc/kmsg && "]) {
      const refused = await under(overmount)
      expect(refused.output, overmount).toContain("Can't mount proc on /newroot/proc: Operation not permitted")
      expect(refused.code).not.toBe(0)
    }
    // ProtectProc=invisible (hidepid) is harmless: the worker keeps it.
    expect((await under("mount -o remount,hidepid=invisible /proc && ")).output.trim()).toBe("jail-ok")
  })

  it("hands the web unit, as a credential, the secret of every profile the web role reads", () => {
    const source = (f: string) => fs.readFileSync(path.join(checkout, "src/actors", f), "utf8")
    const loaded = (text: string) => [...text.matchAll(/(?:secret|loadProfile)\("([a-z-]+)"/g)].map((m) => m[1] ?? "")
    // The site's own profiles, then the master's (ClusterMasterLayer: cluster.yml and its two rpc secrets).
    const master = ["cluster", "cluster-status", "cluster-admin"]
    expect(loaded(source("cluster/layer.ts")).concat(["cluster"])).toEqual(expect.arrayContaining(master))
    const profiles = [...new Set([...loaded(source("web/layer.ts")), ...master])]
    expect(profiles).toEqual(expect.arrayContaining(["web", "udbsync-shadow", "presencesync-sub"]))
    const withSecret = profiles.filter((p) => /^(shared|session)_secret:/m.test(fs.readFileSync(path.join(checkout, "etc/prologin", `${p}.yml`), "utf8")))
    const credentials = roleSettings("web").filter(([k]) => k === "LoadCredential").map(([, v]) => v)
    expect(credentials.sort()).toEqual(["database-url", ...withSecret].map((n) => `${n}:/etc/prologin/secrets/${n}`).sort())
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
    // The worker builds jails (namespaces, mounts, setuid to `cluster`, a delegated cgroup): 4.5
    // at most, in a unit that writes nothing of the system; the login helper mounts for the
    // machine, so it has no mount namespace (the test above): 5 at most; every other role 3.
    const bound: Record<string, number> = { worker: 4.5, login: 5 }
    for (const role of roleNames) expect(levels[role], role).toBeLessThanOrEqual(bound[role] ?? 3)
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
    // And the user the worker's jails run as (cluster.yml executor.user, default `cluster`).
    const defaults = Schema.decodeUnknownSync(ExecutorConfig)({ game: { server: ["s"], client: ["c"], rules: "r" } })
    const jailUser = defaults.user
    // (Its default box directory is under the worker unit's own state directory.)
    expect(defaults.work_dir.startsWith(`/var/lib/${lastSetting(roleSettings("worker"), "StateDirectory")}/`)).toBe(true)
    expect(passwd).toMatch(new RegExp(`^${jailUser}:x:\\d+:\\d+:[^:]*:[^:]*:/usr/sbin/nologin$`, "m"))
  })
})
