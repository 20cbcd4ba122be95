import { execFile, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { Redacted } from "effect"
import { running } from "../../../src/runtime/process-alive.js"
import { copyProfiles, hfsServerIn } from "../config-copy.js"
import { checkout, LISTENING, type Spawned, spawnTracked, waitForOutput } from "../node-process.js"

// A small contest site in network namespaces, every part real: a switch namespace holding a
// bridge; `gw` (--layer gw on a PostgreSQL database of the test cluster), `rhfs0` and `rhfs1`
// (--layer rhfs --hfs 0 / 1), and user machines (--layer user: presenced + passwd sync) that log
// users in through real PAM (pamtester → pam_unix on the machine's own /etc/shadow →
// pam_exec → bin/prolo-pam.js → nbdfuse + loop + ext4 at /home/<login>).
//
// A user machine is a network namespace plus its own mount and UTS namespaces, held by an
// anchor process (`sleep`) that everything of that machine joins with nsenter:
//   - hostname = its MDB name (presenced and prolo-pam read it);
//   - /etc is an overlayfs over the host's /etc: passwd sync writes /etc/passwd and /etc/shadow
//     there by rename, as on a real machine (a file bind-mounted from /etc/netns/<ns>/, what
//     `ip netns exec` does, cannot be replaced by rename: EBUSY), /etc/hosts names gw and hfs<id>,
//     /etc/pam.d/ holds the test service; the host's /etc is never written;
//   - /home and /run are tmpfs: homes are mounted there, prolo-pam's session files live in
//     /run/prolo-pam; the host's /home and /run see nothing.
// PostgreSQL is reached over its unix socket (a file, shared across network namespaces).
// `close` removes everything (processes, mounts, loop devices, namespaces, files), also after
// a failure.

const execP = (cmd: string, args: ReadonlyArray<string>, input?: string, timeoutMs = 60_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 8 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
    if (input !== undefined) child.stdin?.end(input)
  })

const must = async (cmd: string, args: ReadonlyArray<string>) => {
  const r = await execP(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

export const GW_IP = "10.12.1.254"
const SERVICE_POOL = "10.12.1.0/24"
const USER_POOL = "10.12.0.0/24"
const NODE_PORT = 20000
/** pam.yml's default helper_socket (the machines keep the default state_dir). */
const HELPER_SOCKET = "/run/prolo-pam/.helper.sock"
const PRESENCE_TCP_PORT = 20061

export interface MachineSpec {
  readonly name: string
  readonly hfs: number
}

export interface SiteOptions {
  readonly machines: ReadonlyArray<MachineSpec>
  /** Users imported (`First Last` lines); their logins and passwords come from the password sheet. */
  readonly users: ReadonlyArray<string>
  readonly leaseSeconds: number
  /** A fresh, empty database for the site (tests: the test cluster's createTestDatabase). */
  readonly database: () => Promise<Redacted.Redacted<string>>
}

export interface Machine {
  readonly name: string
  readonly ns: string
  readonly ip: string
  readonly hfs: number
  readonly config: string
  /** How its /etc is made (see anchorMachine). */
  readonly etcSetup: ReadonlyArray<string>
  /** The anchor holding its mount and UTS namespaces. */
  anchor: Spawned
  node: Spawned | undefined
}

export interface PamResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const tagged = (tag: string, name: string) => `ps-${tag}-${name}`

export class Site {
  /** Loop devices prolo-pam attached, by machine, with the identity of their backing file. */
  readonly loops = new Map<string, { readonly machine: string; readonly backing: string }>()
  readonly nodes = new Map<string, Spawned>()
  readonly machines = new Map<string, Machine>()
  readonly passwords = new Map<string, string>()
  readonly namespaces: Array<string> = []
  databaseUrl: Redacted.Redacted<string> | undefined
  logins: ReadonlyArray<string> = []

  constructor(
    readonly tag: string,
    readonly root: string,
    readonly options: SiteOptions
  ) {}

  get switchNs() {
    return tagged(this.tag, "sw")
  }

  nsOf(name: string) {
    return tagged(this.tag, name)
  }

  machine(name: string): Machine {
    const m = this.machines.get(name)
    if (m === undefined) throw new Error(`no machine ${name}`)
    return m
  }

  /** argv prefix running inside machine `name` (its network, mount and UTS namespaces). */
  enter(name: string): ReadonlyArray<string> {
    const pid = this.machine(name).anchor.child.pid
    return ["nsenter", "-t", String(pid), "-n", "-m", "-u", "--"]
  }

  inMachine(name: string, argv: ReadonlyArray<string>, input?: string, timeoutMs = 60_000) {
    const [cmd, ...rest] = [...this.enter(name), ...argv]
    return execP(cmd!, rest, input, timeoutMs)
  }

  inNs(ns: string, argv: ReadonlyArray<string>, input?: string, timeoutMs = 60_000) {
    return execP("ip", ["netns", "exec", ns, ...argv], input, timeoutMs)
  }

  /** The operator CLI, run on the gateway. */
  async prolo(args: ReadonlyArray<string>) {
    const r = await this.inNs(this.nsOf("gw"), [
      "env",
      `PROLO_NODE=http://${GW_IP}:${NODE_PORT}`,
      `PROLO_CONFIG_DIR=${path.join(this.root, "cfg-gw")}`,
      process.execPath,
      path.join(checkout, "bin/prolo.js"),
      ...args
    ])
    if (r.code !== 0) throw new Error(`prolo ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}${r.stdout.trim()}`)
    return r.stdout
  }

  /**
   * A login as a greeter makes it: `pamtester prolo-test LOGIN <ops…>` on the machine, the
   * password on stdin (pam_unix checks it against the machine's /etc/shadow).
   */
  async pam(machine: string, login: string, ops: ReadonlyArray<string>): Promise<PamResult> {
    const password = this.passwords.get(login) ?? ""
    const started = Date.now()
    const r = await this.inMachine(machine, ["pamtester", "-v", "prolo-test", login, ...ops], `${password}\n`, 120_000)
    if (process.env.PROLO_SITE_VERBOSE) console.log(`site ${this.tag}: pam ${machine} ${login} ${ops.join(",")}: ${r.code} in ${Date.now() - started} ms`)
    await this.rememberLoops(machine)
    return r
  }

  /** Loop devices prolo-pam attached on `machine`, so that `close` detaches even leaked ones. */
  async rememberLoops(machine: string) {
    const r = await this.inMachine(machine, ["sh", "-c", "cat /run/prolo-pam/* 2>/dev/null || true"])
    for (const m of r.stdout.matchAll(/"loop":"(\/dev\/loop\d+)"/g)) {
      const backing = await loopBacking(m[1]!)
      if (backing !== "" && !this.loops.has(m[1]!)) this.loops.set(m[1]!, { machine, backing })
    }
  }

  /**
   * Detaches the loops prolo-pam left on `machine` (all machines without one): those still over
   * the same file, or over a file gone with its FUSE mount (a machine that lost power). A loop
   * number reused since by someone else backs another file and is left alone.
   */
  async detachLoops(machine?: string) {
    for (const [loop, known] of this.loops) {
      if (machine !== undefined && known.machine !== machine) continue
      const now = await loopBacking(loop)
      const info = await execP("losetup", ["-l", "-n", "-O", "BACK-FILE", loop])
      if (now === known.backing || (now === "" && info.stdout.trim().endsWith("/nbd"))) await execP("losetup", ["-d", loop])
      this.loops.delete(loop)
    }
  }

  /** What is mounted at `dir` on `machine` (findmnt), or "" when nothing. */
  async mountAt(machine: string, dir: string) {
    const r = await this.inMachine(machine, ["findmnt", "-rn", "-o", "SOURCE,FSTYPE", dir])
    return r.code === 0 ? r.stdout.trim() : ""
  }

  /** Every mount of `machine` under /home or /run/prolo-pam (nothing must be left after a logout). */
  async homeMounts(machine: string) {
    const r = await this.inMachine(machine, ["findmnt", "-rn", "-o", "TARGET"])
    return r.stdout.split("\n").filter((t) => /^\/home\/.|^\/run\/prolo-pam\//.test(t))
  }

  async close() {
    // Unmount what the machines still hold while their namespaces exist, then stop everything.
    for (const m of this.machines.values()) {
      if (m.anchor.child.exitCode !== null || m.anchor.child.signalCode !== null) continue
      await this.inMachine(m.name, [
        "sh",
        "-c",
        "for t in $(findmnt -rn -o TARGET | grep -E '^/home/.|^/run/prolo-pam/' | sort -r); do umount -l \"$t\" || fusermount3 -u -z \"$t\"; done; true"
      ]).catch(() => undefined)
      await this.rememberLoops(m.name).catch(() => undefined)
      await powerOff(this, m.name).catch(() => undefined)
    }
    for (const ns of [...this.namespaces].reverse()) {
      const pids = await execP("ip", ["netns", "pids", ns])
      for (const pid of pids.stdout.split("\n").filter((p) => p !== "")) {
        try {
          process.kill(Number(pid), "SIGKILL")
        } catch {
          // gone
        }
      }
    }
    for (const s of [...this.nodes.values(), ...[...this.machines.values()].map((m) => m.anchor)]) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill("SIGKILL")
        await s.exited
      }
    }
    await this.detachLoops()
    for (const ns of [...this.namespaces].reverse()) await execP("ip", ["netns", "delete", ns])
    await fs.rm(this.root, { recursive: true, force: true }).catch(() => undefined)
  }
}

/** The example profiles with `edits` (whole texts) in their place. */
const copyConfig = (dir: string, edits: Record<string, string>) =>
  copyProfiles(dir, Object.fromEntries(Object.entries(edits).map(([name, text]) => [name, () => text])))

const urlOfGw = `http://${GW_IP}:${NODE_PORT}/`

/** The configuration every node of the site shares (secrets stay the dev ones). */
const commonEdits = (site: Site): Record<string, string> => ({
  "node.yml": `restarts: 5\nrestartWindowSeconds: 10\ndatabase:\n  url: ${JSON.stringify(Redacted.value(site.databaseUrl!))}\n`,
  "presence.yml": `lease_seconds: ${site.options.leaseSeconds}\ntcp_listen: ${GW_IP}:${PRESENCE_TCP_PORT}\n`,
  "mdbsync-sub.yml": `url: ${urlOfGw}\nshared_secret: dev-mdbsyncsub-secret\n`,
  "udbsync-sub.yml": `url: ${urlOfGw}\nshared_secret: dev-udbsyncsub-secret\n`,
  "presencesync-pub.yml": `url: ${urlOfGw}\nshared_secret: dev-presencesync-secret\n`
})

const startNodeIn = async (site: Site, name: string, argv: ReadonlyArray<string>, prefix: ReadonlyArray<string>) => {
  const node = spawnTracked(
    spawn(prefix[0]!, [...prefix.slice(1), process.execPath, path.join(checkout, "bin/prolo-node.js"), ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PROLO_DATA_DIR: path.join(site.root, `data-${name}`) }
    })
  )
  site.nodes.set(name, node)
  await waitForOutput(node, LISTENING, 120_000)
  return node
}

const addNs = async (site: Site, name: string, ip: string, index: number) => {
  const ns = site.nsOf(name)
  await must("ip", ["netns", "add", ns])
  site.namespaces.push(ns)
  const outer = `ps${site.tag}${index}`
  await must("ip", ["link", "add", outer, "netns", site.switchNs, "type", "veth", "peer", "name", "eth0", "netns", ns])
  await must("ip", ["-n", site.switchNs, "link", "set", outer, "master", "br0", "up"])
  await must("ip", ["-n", ns, "addr", "add", `${ip}/16`, "dev", "eth0"])
  await must("ip", ["-n", ns, "link", "set", "eth0", "up"])
  await must("ip", ["-n", ns, "link", "set", "lo", "up"])
  return ns
}

/** The PAM service the tests log in with: pam_unix, then our lines (etc/pam.d/prolo) as installed. */
const pamService = async (config: string) => {
  const ours = (await fs.readFile(path.join(checkout, "etc/pam.d/prolo"), "utf8")).replaceAll(
    "/usr/bin/prolo-pam",
    `${path.join(checkout, "bin/prolo-pam")} --config ${config}`
  )
  return {
    prolo: ours,
    "prolo-test": "auth     required  pam_unix.so\naccount  required  pam_unix.so\n@include prolo\nsession  required  pam_unix.so\n"
  }
}

const startMachine = async (site: Site, spec: MachineSpec, ip: string, index: number) => {
  const ns = await addNs(site, spec.name, ip, index)
  const dir = path.join(site.root, `m-${spec.name}`)
  const upper = path.join(dir, "etc-upper")
  const work = path.join(dir, "etc-work")
  await fs.mkdir(path.join(upper, "pam.d"), { recursive: true })
  await fs.mkdir(work, { recursive: true })
  const config = path.join(site.root, `cfg-${spec.name}`)
  await copyConfig(config, {
    ...commonEdits(site),
    "presence.yml": `lease_seconds: ${site.options.leaseSeconds}\ntcp_connect: ${GW_IP}:${PRESENCE_TCP_PORT}\n`,
    "udbsync-passwd.yml": `roots: ["/"]\nssh_roots: []\n# Debian has gid 10 (uucp): the managed wheel group gets a free gid\ngroup_gids: { wheel: 10002 }\n`,
    "pam.yml": `mdb_url: ${urlOfGw}\nattach: auto\nhome_timeout_seconds: 120\n`
  })
  const hosts = await fs.readFile("/etc/hosts", "utf8")
  await fs.writeFile(path.join(upper, "hosts"), `${hosts}\n${GW_IP} gw mdb presencesync\n10.12.1.10 rhfs0 hfs0\n10.12.1.11 rhfs1 hfs1\n`)
  for (const [file, text] of Object.entries(await pamService(config))) await fs.writeFile(path.join(upper, "pam.d", file), text)
  return anchorMachine(site, spec, ns, ip, config, [`mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper},workdir=${work} /etc`])
}

/** The anchor process holding a machine's mount and UTS namespaces, after `etcSetup`. */
const anchorMachine = async (site: Site, spec: MachineSpec, ns: string, ip: string, config: string, etcSetup: ReadonlyArray<string>) => {
  const setup = [
    `hostname ${spec.name}`,
    ...etcSetup,
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    "mount -t tmpfs -o mode=0755 tmpfs /home",
    "echo anchor-ready >&2",
    "exec sleep infinity"
  ].join(" && ")
  const anchor = spawnTracked(
    spawn("ip", ["netns", "exec", ns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", setup], {
      stdio: ["ignore", "pipe", "pipe"]
    })
  )
  const machine: Machine = { name: spec.name, ns, ip, hfs: spec.hfs, config, etcSetup, anchor, node: undefined }
  site.machines.set(spec.name, machine)
  await waitForOutput(anchor, /anchor-ready/, 30_000)
  return machine
}

/**
 * A light user machine for the login bench: its own namespaces and address, but no node; its
 * account files, hosts and PAM services are a read-only snapshot of `like`'s synced /etc.
 * Register it in MDB first (`mdb add`).
 */
export const addLightMachine = async (site: Site, spec: MachineSpec, ip: string, index: number, like: string) => {
  const snapshot = path.join(site.root, `etc-of-${like}`)
  if (!(await fs.stat(snapshot).then(() => true, () => false))) {
    await fs.mkdir(snapshot, { recursive: true })
    const r = await site.inMachine(like, ["sh", "-c", `cp /etc/passwd /etc/shadow /etc/group /etc/hosts ${snapshot}/ && cp -a /etc/pam.d ${snapshot}/pam.d`])
    if (r.code !== 0) throw new Error(`snapshot of ${like}'s /etc: ${r.stderr}`)
  }
  const ns = await addNs(site, spec.name, ip, index)
  const binds = ["passwd", "shadow", "group", "hosts", "pam.d"].map((f) => `mount --bind ${snapshot}/${f} /etc/${f}`)
  return anchorMachine(site, spec, ns, ip, site.machine(like).config, binds)
}

/** A machine back after a power loss: fresh namespaces (its disk, the /etc overlay, kept) and its node. */
export const rebootMachine = async (site: Site, name: string) => {
  const m = site.machine(name)
  await anchorMachine(site, { name, hfs: m.hfs }, m.ns, m.ip, m.config, m.etcSetup)
  await bootMachine(site, name)
}

/** Starts the node of a machine (presenced, passwd sync, the login helper) inside its namespaces. */
export const bootMachine = async (site: Site, name: string) => {
  const m = site.machine(name)
  m.node = await startNodeIn(site, name, ["--layer", "user,login", "--listen", `${m.ip}:${NODE_PORT}`, "--config", m.config], site.enter(name))
  await waitForHelper(site, name)
}

/** The login helper's socket is there (its loop starts after the node says it listens). */
const waitForHelper = (site: Site, name: string) =>
  waitUntil(`${name}'s login helper socket`, async () => (await site.inMachine(name, ["test", "-S", HELPER_SOCKET])).code === 0)

/**
 * A light machine's login helper alone (`--layer login`, its only process besides the logins),
 * so that bin/prolo-pam hands it the stages as on a real machine.
 */
export const startLightHelper = async (site: Site, name: string) => {
  const m = site.machine(name)
  m.node = await startNodeIn(site, name, ["--layer", "login", "--listen", `${m.ip}:${NODE_PORT}`, "--config", m.config], site.enter(name))
  await waitForHelper(site, name)
}

/** Every thread of `pid` has exited (a zombie whose other threads still run has not). */
const ended = (pid: number): boolean => {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => !running(Number(tid)))
  } catch {
    return true
  }
}

/** `MAJ:MIN INO` of the file behind a loop device ("" when none, or gone). */
const loopBacking = async (loop: string) => (await execP("losetup", ["-l", "-n", "-O", "BACK-MAJ:MIN,BACK-INO", loop])).stdout.trim().replace(/\s+/g, " ")

/**
 * Power loss: every process of the machine dies at once (its mount namespace goes with them),
 * and what the kernel still held for it (a loop device over its dead FUSE file) is gone as after
 * a reboot.
 */
export const powerOff = async (site: Site, name: string) => {
  const m = site.machine(name)
  const pidsOf = async () => (await execP("ip", ["netns", "pids", m.ns])).stdout.split("\n").filter((p) => p !== "").map(Number)
  const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, "utf8").trim()
  const kill = (pids: ReadonlyArray<number>) => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone
      }
    }
  }
  // nbdfuse first, and wait until it has ended. Killed together with the rest, it may be the last
  // process of the machine's mount namespace: tearing that down unmounts the home's ext4, whose
  // final flush goes through the loop device to nbdfuse's FUSE file, served by the very process
  // doing the teardown: stuck for ever in D state. A real machine has no such teardown.
  const fuse = (await pidsOf()).filter((pid) => {
    try {
      return comm(pid) === "nbdfuse"
    } catch {
      return false
    }
  })
  kill(fuse)
  await waitUntil("the machine's nbdfuse to end", async () => fuse.every(ended), 10_000)
  kill(await pidsOf())
  await m.anchor.exited
  if (m.node !== undefined) await m.node.exited
  await site.detachLoops(name)
}

/** Builds the whole site; on any failure everything created so far is removed. */
export const makeSite = async (options: SiteOptions): Promise<Site> => {
  const tag = randomBytes(2).toString("hex")
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "ps-site-"))
  await fs.chmod(root, 0o755)
  const site = new Site(tag, root, options)
  const started = Date.now()
  const step = (what: string) => {
    if (process.env.PROLO_SITE_VERBOSE) console.log(`site ${tag}: ${what} at ${Date.now() - started} ms`)
  }
  try {
    site.databaseUrl = await options.database()
    await must("ip", ["netns", "add", site.switchNs])
    site.namespaces.push(site.switchNs)
    await must("ip", ["-n", site.switchNs, "link", "add", "br0", "type", "bridge"])
    await must("ip", ["-n", site.switchNs, "link", "set", "br0", "up"])

    // gateway
    const gwNs = await addNs(site, "gw", GW_IP, 0)
    await copyConfig(path.join(root, "cfg-gw"), commonEdits(site))
    await startNodeIn(site, "gw", ["--layer", "gw", "--listen", `${GW_IP}:${NODE_PORT}`, "--config", path.join(root, "cfg-gw")], ["ip", "netns", "exec", gwNs])
    step("gw up")
    // The site's LAN is 10.12.0.0/23 (this lane's range), not the original's 192.168.0.0/23.
    const db = new pg.Client({ connectionString: Redacted.value(site.databaseUrl) })
    await db.connect()
    try {
      await db.query(`UPDATE ip_pool SET network = $1 WHERE mtype = 'user'`, [USER_POOL])
      await db.query(`UPDATE ip_pool SET network = $1, reserved = $2 WHERE mtype = 'service'`, [SERVICE_POOL, `{${GW_IP}}`])
      await db.query(`UPDATE ip_pool SET network = '10.12.2.0/24' WHERE mtype = 'cluster'`)
    } finally {
      await db.end()
    }

    // machines in MDB, as an operator adds them (at once: each CLI start costs a second on a busy box)
    const userIps = options.machines.map((_, i) => `10.12.0.${i + 1}`)
    await Promise.all([
      site.prolo(["mdb", "add", "--hostname", "gw", "--mac", "02:12:00:00:01:fe", "--ip", GW_IP, "--mtype", "service", "--room", "other", "--aliases", "mdb,udb,presencesync"]),
      ...[0, 1].map((id) =>
        site.prolo(["mdb", "add", "--hostname", `rhfs${id}`, "--mac", `02:12:00:00:01:1${id}`, "--ip", `10.12.1.1${id}`, "--mtype", "service", "--room", "other", "--aliases", `hfs${id}`])
      ),
      ...options.machines.map((m, i) =>
        site.prolo(["mdb", "add", "--hostname", m.name, "--mac", `02:12:00:00:00:${(i + 1).toString(16).padStart(2, "0")}`, "--ip", userIps[i]!, "--mtype", "user", "--room", "pasteur", "--hfs", String(m.hfs)])
      )
    ])
    await fs.writeFile(path.join(root, "users.txt"), options.users.map((u) => u.replace(" ", "\t")).join("\n") + "\n")
    await site.prolo(["udb", "import", "--file", path.join(root, "users.txt")])
    for (const line of (await site.prolo(["udb", "pwdsheet", "--type", "user"])).split("\n")) {
      const [, login, password] = line.split("\t")
      if (login !== undefined && password !== undefined) site.passwords.set(login.trim(), password.trim())
    }
    site.logins = [...site.passwords.keys()]
    step("machines and users registered")

    // home file servers
    await Promise.all(
      [0, 1].map(async (id) => {
        const name = `rhfs${id}`
        const ns = await addNs(site, name, `10.12.1.1${id}`, 1 + id)
        const config = path.join(root, `cfg-${name}`)
        const server = hfsServerIn(path.join(root, `export-${name}`))(await fs.readFile(path.join(checkout, "etc/prologin/hfs-server.yml"), "utf8"))
          .replace(/^rpc_port: .*$/m, "rpc_port: 20100")
          .replace(/^nbd_port: .*$/m, "nbd_port: 10809")
          .replace(/^bind: .*$/m, "")
          // a logged-out home may move at once (the default keeps a fresh grant 30 s)
          .replace(/^live_grant_seconds: .*$/m, "live_grant_seconds: 1")
        await copyConfig(config, { ...commonEdits(site), "hfs-server.yml": server })
        const node = await startNodeIn(site, name, ["--layer", "rhfs", "--hfs", String(id), "--listen", `10.12.1.1${id}:${NODE_PORT}`, "--config", config], ["ip", "netns", "exec", ns])
        await waitForOutput(node, new RegExp(`hfs${id}: rpc over tcp\\+msgpack on 10\\.12\\.1\\.1${id}:20100`), 60_000)
      })
    )
    step("hfs up")
    // user machines
    await Promise.all(
      options.machines.map(async (spec, i) => {
        await startMachine(site, spec, userIps[i]!, 10 + i)
        await bootMachine(site, spec.name)
      })
    )
    step("machines up")
    // passwd sync has written every user into each machine's /etc/shadow
    for (const spec of options.machines) await waitUntil(`${spec.name}'s /etc/shadow has the users`, async () => {
      const r = await site.inMachine(spec.name, ["cat", "/etc/shadow"])
      return site.logins.every((l) => r.stdout.includes(`\n${l}:$6$`) || r.stdout.startsWith(`${l}:$6$`))
    })
    step("shadow synced")
    return site
  } catch (e) {
    const logs = [...site.nodes.entries()].map(([n, s]) => `--- ${n}:\n${s.stderr.slice(-3000)}`).join("\n")
    await site.close()
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs}`)
  }
}

/** Polls `check` every 50 ms until true; fails naming `what` after `ms`. */
export const waitUntil = async (what: string, check: () => Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}
