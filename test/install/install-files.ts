import * as fs from "node:fs"
import * as path from "node:path"
import { checkout } from "../e2e/node-process.js"

// The install files of etc/ (units, drop-ins, defaults) and the README's "Deploying on a LAN"
// section, as the install tests read them.

/** Where the units expect the checkout (README.md, "Deploying on a LAN"). */
export const installPrefix = "/opt/prolo"
export const systemdDir = path.join(checkout, "etc/systemd")

const walk = (dir: string): ReadonlyArray<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))

/** Every file under etc/systemd, etc/default and etc/sysusers.d. */
export const installFiles = (): ReadonlyArray<string> =>
  ["etc/systemd", "etc/default", "etc/sysusers.d"].flatMap((d) => walk(path.join(checkout, d))).sort()

/** The roles that have a drop-in `prolo-node@<role>.service.d/`. */
export const dropInRoles = (): ReadonlyArray<string> =>
  fs
    .readdirSync(systemdDir)
    .flatMap((name) => {
      const m = /^prolo-node@(.+)\.service\.d$/.exec(name)
      return m?.[1] === undefined ? [] : [m[1]]
    })
    .sort()

/** `Key=value` lines of a unit file or drop-in (comments and sections left out). */
export const unitSettings = (file: string): ReadonlyArray<readonly [string, string]> =>
  fs
    .readFileSync(file, "utf8")
    .split("\n")
    .flatMap((line) => {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line)
      return m?.[1] === undefined || m[2] === undefined ? [] : [[m[1], m[2]] as const]
    })

/** The settings of `prolo-node@<role>`: the template, then the role's drop-ins (later wins for scalars). */
export const roleSettings = (role: string): ReadonlyArray<readonly [string, string]> => {
  const dropIns = path.join(systemdDir, `prolo-node@${role}.service.d`)
  const files = fs.existsSync(dropIns) ? fs.readdirSync(dropIns).filter((f) => f.endsWith(".conf")).sort().map((f) => path.join(dropIns, f)) : []
  return [path.join(systemdDir, "prolo-node@.service"), ...files].flatMap(unitSettings)
}

export const lastSetting = (settings: ReadonlyArray<readonly [string, string]>, key: string): string | undefined =>
  settings.filter(([k]) => k === key).at(-1)?.[1]

/** README.md's "Deploying on a LAN" section. */
export const deploySection = (): string => {
  const readme = fs.readFileSync(path.join(checkout, "README.md"), "utf8")
  const start = readme.indexOf("\n## Deploying on a LAN\n")
  if (start < 0) throw new Error('README.md has no "## Deploying on a LAN" section')
  const end = readme.indexOf("\n## ", start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

export interface Invocation {
  readonly bin: "prolo-node" | "prolo"
  readonly args: ReadonlyArray<string>
  readonly where: string
}

const words = (text: string): ReadonlyArray<string> => text.trim().split(/\s+/).filter((w) => w !== "")

/** A command line of text → an invocation of one of our binaries, if it is one. */
const invocationIn = (text: string, where: string): Invocation | undefined => {
  // In command position only: first on the line or after `&&`, `;`, `|` (not `createdb prolo`).
  const m = /(?:^|&&|;|\|)\s*(?:\/opt\/prolo\/bin\/|node bin\/)?(prolo-node|prolo)(?:\.js)?(?=\s|$)((?:\s+[^\s;&|#)`]+)*)/.exec(text)
  if (m?.[1] === undefined) return undefined
  const bin = m[1] === "prolo-node" ? "prolo-node" : "prolo"
  // Shell substitutions and placeholders are not our arguments.
  const args = words(m[2] ?? "").filter((a) => !a.startsWith("$") && !a.startsWith("<"))
  return { bin, args, where }
}

/**
 * Every invocation of prolo-node or prolo the install names: the units' ExecStart (with
 * %i left for the caller), `PROLO_NODE_ARGS="..."` examples and backquoted `--flags` in etc/,
 * and the README section's commands (code blocks and `inline code`).
 */
export const invocations = (): ReadonlyArray<Invocation> => {
  const found: Array<Invocation> = []
  for (const file of installFiles()) {
    const rel = path.relative(checkout, file)
    const text = fs.readFileSync(file, "utf8")
    for (const [key, value] of unitSettings(file)) {
      // (An empty `ExecStart=` resets the template's before a drop-in gives its own.)
      if (key === "ExecStart" && value !== "") {
        const inv = invocationIn(value, `${rel} ExecStart`)
        if (inv === undefined) throw new Error(`${rel}: ExecStart=${value} does not run prolo-node`)
        found.push(inv)
      }
    }
    for (const m of text.matchAll(/PROLO_NODE_ARGS="([^"]*)"/g)) {
      const args = words(m[1] ?? "").filter((a) => a !== "...")
      if (args.length > 0) found.push({ bin: "prolo-node", args, where: `${rel} PROLO_NODE_ARGS` })
    }
    for (const m of text.matchAll(/`(--[^`]*)`/g)) found.push({ bin: "prolo-node", args: words(m[1] ?? ""), where: `${rel} comment` })
  }
  const section = deploySection()
  const code = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => (m[1] ?? "").split("\n"))
  // (A lone `prolo` in the text is the user's name, not a command.)
  const inline = [...section.replace(/```sh\n[\s\S]*?```/g, "").matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? "").filter((t) => t !== "prolo")
  for (const line of [...code, ...inline]) {
    const inv = invocationIn(line.replace(/#.*$/, ""), `README.md: ${line.trim()}`)
    if (inv !== undefined) found.push(inv)
  }
  return found
}
