import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { roleNames } from "../../src/roles.js"
import { runTool, type ToolResult } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"
import { deploySection, invocations, type Invocation } from "./install-files.js"

// Every command and flag the units, etc/default and the README's "Deploying on a LAN" name
// exists: prolo-node's flags are in its --help and the unit's command lines (with each role, and
// the arguments etc/default suggests) pass the real binary's parsing up to reading the
// configuration; `prolo` subcommands answer --help and list the flags used.

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-cmds-"))
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

const helps = new Map<string, Promise<ToolResult>>()
const runBin = (bin: Invocation["bin"], args: ReadonlyArray<string>) =>
  Effect.runPromise(runTool([process.execPath, path.join(checkout, "bin", `${bin}.js`), ...args], 60_000))
const helpOf = (bin: Invocation["bin"], words: ReadonlyArray<string>): Promise<ToolResult> => {
  const key = [bin, ...words].join(" ")
  const cached = helps.get(key) ?? runBin(bin, [...words, "--help"])
  helps.set(key, cached)
  return cached
}
/** The `--flags` (and `-x` aliases) of a USAGE line. */
const usageFlags = (help: string): ReadonlySet<string> => {
  const usage = help.split("\n").find((l) => l.startsWith("$ ")) ?? ""
  return new Set([...usage.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1] ?? ""))
}
const flagsOf = (args: ReadonlyArray<string>) => args.filter((a) => a.startsWith("-")).map((a) => a.split("=")[0] ?? a)
const isRolePlaceholder = (a: string) => a === "%i" || a === "<role>"

const all = invocations()
const nodeInvocations = all.filter((i) => i.bin === "prolo-node")
const cliInvocations = all.filter((i) => i.bin === "prolo")

describe("commands named by the install", () => {
  it("finds the units' ExecStart, the suggested arguments and the README's commands", () => {
    expect(nodeInvocations.some((i) => i.where.endsWith("ExecStart"))).toBe(true)
    expect(nodeInvocations.some((i) => i.args.includes("--hfs"))).toBe(true)
    expect(cliInvocations.length).toBeGreaterThan(0)
  })

  it("every flag given to prolo-node is one of its options", async () => {
    const help = await helpOf("prolo-node", [])
    expect(help.code).toBe(0)
    const known = usageFlags(help.output)
    expect(known.has("--layer")).toBe(true)
    const unknown = nodeInvocations.flatMap((i) => flagsOf(i.args).filter((f) => f !== "--help" && !known.has(f)).map((f) => `${f} (${i.where})`))
    expect(unknown).toEqual([])
    // The check can fail: a flag prolo-node does not have.
    expect(known.has("--hfs-ids")).toBe(false)
  })

  it("the unit's command line, for every role, with the suggested arguments, passes prolo-node's parsing", async () => {
    const exec = nodeInvocations.find((i) => i.where.endsWith("ExecStart"))?.args ?? []
    // The arguments etc/default suggests (PROLO_NODE_ARGS), each flag once.
    const extra = new Map<string, ReadonlyArray<string>>()
    for (const inv of nodeInvocations.filter((i) => i.where.endsWith("PROLO_NODE_ARGS"))) {
      for (let k = 0; k < inv.args.length; k++) {
        const flag = inv.args[k] ?? ""
        if (flag.startsWith("--") && !extra.has(flag)) extra.set(flag, [flag, inv.args[k + 1] ?? ""])
      }
    }
    const missingConfig = path.join(scratch, "no-config")
    const results = await Promise.all(
      roleNames.map(async (role) => {
        const argv = [...exec.map((a) => (isRolePlaceholder(a) ? role : a)), ...[...extra.values()].flat(), "--config", missingConfig]
        return { role, argv, result: await runBin("prolo-node", argv) }
      })
    )
    for (const { role, argv, result } of results) {
      // Everything on the command line was accepted; the node stopped at the configuration.
      expect(result.output.split("\n")[0], `${role}: prolo-node ${argv.join(" ")}`).toBe(
        `prolo-node: ${missingConfig}: expected a configuration directory (set --config or PROLO_CONFIG_DIR), got no such directory`
      )
      expect(result.code).toBe(2)
    }
    // The same check refuses a bad value (it can fail).
    const bad = await runBin("prolo-node", ["--layer", "rhfs", "--hfs", "0,x", "--config", missingConfig])
    expect(bad.output).toContain("--hfs: expected a comma list of HFS ids")
  })

  it("every prolo command the README names exists, with the flags it gives", async () => {
    const top = await helpOf("prolo", [])
    expect(top.code).toBe(0)
    // Command paths from the COMMANDS list: `- mdb [--node URL] ... add --hostname ...` → mdb add.
    const commands = new Set(
      top.output.split("\n").flatMap((line) => {
        if (!/^\s+- /.test(line)) return []
        // "- mdb [--node URL] [--config DIR] add --hostname text ...   description": the words
        // before the first flag or argument, in the part before the description's gap.
        const usage = (line.replace(/^\s+- /, "").split(/\s{2,}/)[0] ?? "").replace(/\[[^\]]*\]/g, " ")
        const words = usage.split(/\s+/).filter((w) => w !== "")
        const end = words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w))
        return [(end < 0 ? words : words.slice(0, end)).join(" ")]
      })
    )
    const problems: Array<string> = []
    for (const inv of cliInvocations) {
      const words = inv.args.filter((a) => !a.startsWith("-"))
      let sub: ReadonlyArray<string> = []
      for (let n = words.length; n > 0; n--) {
        if (commands.has(words.slice(0, n).join(" "))) {
          sub = words.slice(0, n)
          break
        }
      }
      if (words.length > 0 && sub.length === 0) {
        problems.push(`prolo ${inv.args.join(" ")}: no such command (${inv.where})`)
        continue
      }
      const help = await helpOf("prolo", sub)
      if (help.code !== 0) problems.push(`prolo ${sub.join(" ")} --help failed: ${help.output}`)
      const flags = new Set([...usageFlags(help.output), ...usageFlags(top.output)])
      for (const f of flagsOf(inv.args)) if (!flags.has(f)) problems.push(`prolo ${sub.join(" ")}: no flag ${f} (${inv.where})`)
    }
    expect(problems).toEqual([])
    expect(commands.has("hfs status")).toBe(true)
    expect(commands.has("hfs stats")).toBe(false)
  })

  it("every /opt/prolo path the README's deployment section names is in the checkout", () => {
    const named = [...new Set([...deploySection().matchAll(/\/opt\/prolo\/([^\s`'"),;{}[\]]+)/g)].map((m) => m[1] ?? ""))]
    expect(named).toEqual(expect.arrayContaining(["etc/firewall/iptables.rules", "etc/nginx/sso/upstream.conf", "etc/nginx/sites/prolo-web.conf"]))
    // A trailing `*` (`dashboards/*.json`, `prometheus/*`) must match at least one file.
    const exists = (rel: string): boolean => {
      if (!rel.includes("*")) return fs.existsSync(path.join(checkout, rel))
      const dir = path.join(checkout, path.dirname(rel))
      const pattern = new RegExp(`^${path.basename(rel).replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`)
      return fs.existsSync(dir) && fs.readdirSync(dir).some((n) => pattern.test(n))
    }
    expect(named.filter((rel) => !exists(rel))).toEqual([])
    // The check can fail.
    expect(exists("etc/nginx/sso/handler.conf")).toBe(false)
  })

  it("every profile the section names is an etc/prologin example, and every example is named", () => {
    const section = deploySection()
    const examples = fs.readdirSync(path.join(checkout, "etc/prologin")).filter((f) => f.endsWith(".yml")).sort()
    // Bare names only: `/etc/prometheus/prometheus.yml`, `targets/prolo-user.yml`, `*.test.yml` are other files.
    const named = new Set([...section.matchAll(/(?<![\w/.*-])([a-z][a-z-]*\.yml)\b/g)].map((m) => m[1] ?? ""))
    // (The monitoring host's own files, e.g. `prometheus.yml`, are named bare too.)
    const monitoring = ["etc/prometheus", "etc/grafana"].flatMap((d) => fs.readdirSync(path.join(checkout, d), { recursive: true, encoding: "utf8" })).map((f) => path.basename(f))
    expect([...named].filter((n) => !examples.includes(n) && !monitoring.includes(n))).toEqual([])
    expect(examples.filter((e) => !named.has(e))).toEqual([])
  })

  it("every shell block of the README's deployment section is valid bash (bash -n)", async () => {
    const blocks = [...deploySection().matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "")
    expect(blocks.length).toBeGreaterThanOrEqual(5)
    for (const [k, block] of blocks.entries()) {
      const file = path.join(scratch, `block-${k}.sh`)
      fs.writeFileSync(file, block)
      const result = await Effect.runPromise(runTool(["bash", "-n", file]))
      expect(result.output, block).toBe("")
      expect(result.code).toBe(0)
    }
    // The check can fail.
    fs.writeFileSync(path.join(scratch, "bad.sh"), "for f in *.yml; do\n")
    expect((await Effect.runPromise(runTool(["bash", "-n", path.join(scratch, "bad.sh")]))).code).not.toBe(0)
  })
})
