import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeFileSystem } from "@effect/platform-node"
import type { FileSystem } from "@effect/platform"
import { Effect, Either } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { parse, stringify } from "yaml"
import { ClusterProfile } from "../../src/actors/cluster/config.js"
import { FirewallProfile } from "../../src/actors/firewall/config.js"
import { HfsServerProfile } from "../../src/actors/hfs/config.js"
import { SsoProfile } from "../../src/actors/sso/config.js"
import { WebProfile } from "../../src/actors/web/config.js"
import { ConfigDir, type ConfigError, loadProfile } from "../../src/runtime/config.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { checkout } from "../e2e/node-process.js"
import { deploySection, lastSetting, roleSettings } from "./install-files.js"

// The production values README.md's "Deploying on a LAN" gives (its ```yaml blocks, each headed
// `# <profile>.yml`), applied over the etc/prologin example as an operator edits it, pass the
// profile's real schema (unknown keys refused, as at a node's start); and the nginx files it
// installs on the gateway pass the real `nginx -t` together.

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-deploy-"))
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }))

// Each profile read exactly as its subsystem reads it.
const loaders: Record<string, Effect.Effect<unknown, ConfigError, ConfigDir | FileSystem.FileSystem>> = {
  cluster: loadProfile("cluster", ClusterProfile),
  firewall: loadProfile("firewall", FirewallProfile),
  "hfs-server": loadProfile("hfs-server", HfsServerProfile),
  sso: loadProfile("sso", SsoProfile),
  web: loadProfile("web", WebProfile)
}

const snippets = (): ReadonlyArray<{ profile: string; values: Record<string, unknown> }> =>
  [...deploySection().matchAll(/```yaml\n# ([a-z-]+)\.yml\b[^\n]*\n([\s\S]*?)```/g)].map((m) => ({
    profile: m[1] ?? "",
    values: parse(m[2] ?? "") as Record<string, unknown>
  }))

/** The example with the snippet's top-level keys set, written to a fresh config dir, then decoded. */
const decodeEdited = (profile: string, values: Record<string, unknown>, name: string) => {
  const dir = path.join(scratch, name)
  fs.mkdirSync(dir, { recursive: true })
  const example = parse(fs.readFileSync(path.join(checkout, "etc/prologin", `${profile}.yml`), "utf8")) as Record<string, unknown>
  fs.writeFileSync(path.join(dir, `${profile}.yml`), stringify({ ...example, ...values }))
  const load = loaders[profile]
  if (load === undefined) throw new Error(`no loader for ${profile}.yml in this test`)
  return Effect.runPromise(
    Effect.either(load).pipe(Effect.provideService(ConfigDir, dir), Effect.provide(NodeFileSystem.layer))
  )
}

describe("README's production profile values", () => {
  it("names the gateway's, the RHFS's and the web's edits", () => {
    expect(snippets().map((s) => s.profile).sort()).toEqual(["cluster", "firewall", "hfs-server", "sso", "web"])
  })

  it.each(["cluster", "firewall", "hfs-server", "sso", "web"])("%s.yml with the README's values decodes with its schema", async (profile) => {
    const snippet = snippets().find((s) => s.profile === profile)
    expect(snippet).toBeDefined()
    const decoded = await decodeEdited(profile, snippet?.values ?? {}, profile)
    expect(Either.isRight(decoded) ? "ok" : decoded.left.message).toBe("ok")
  })

  it("the same check refuses a key the schema does not have (it can fail)", async () => {
    const decoded = await decodeEdited("firewall", { ipset: ["ipset"], iptables: ["iptables-restore"] }, "bad-firewall")
    expect(Either.isLeft(decoded) && decoded.left.message).toContain("iptables")
  })

  it("hfs-server.yml's production rpc_port is the one hfs-client.yml gives its callers", () => {
    const client = parse(fs.readFileSync(path.join(checkout, "etc/prologin/hfs-client.yml"), "utf8")) as { rpc_port?: number }
    expect(snippets().find((s) => s.profile === "hfs-server")?.values.rpc_port).toBe(client.rpc_port)
  })

  it("sso.yml's production port is the one etc/nginx/sso/upstream.conf names", () => {
    const listen = String(snippets().find((s) => s.profile === "sso")?.values.listen)
    const upstream = fs.readFileSync(path.join(checkout, "etc/nginx/sso/upstream.conf"), "utf8")
    expect(upstream).toContain(`server ${listen};`)
  })

  it("cluster.yml and web.yml share one file store, under the web unit's state directory", () => {
    const cluster = snippets().find((s) => s.profile === "cluster")?.values
    const web = snippets().find((s) => s.profile === "web")?.values as { concours?: { files_dir?: string } } | undefined
    expect(cluster?.files_dir).toBe(web?.concours?.files_dir)
    expect(String(cluster?.files_dir)).toMatch(/^\/var\/lib\/prolo\//)
    // The worker's boxes: under its unit's own state directory, which `cluster` may traverse.
    const worker = roleSettings("worker")
    expect(lastSetting(worker, "StateDirectoryMode")).toBe("0751")
    expect(String((cluster?.executor as { work_dir?: string } | undefined)?.work_dir)).toMatch(new RegExp(`^/var/lib/${lastSetting(worker, "StateDirectory")}/`))
  })
})

describe("README step 3's secret loop", () => {
  it("gives every profile with a secret (shared_secret or session_secret) its own file, and the profiles still decode", async () => {
    const block = /```sh\n[^`]*?(for f in \*\.yml; do[\s\S]*?\ndone)\n/.exec(deploySection())?.[1]
    expect(block).toBeDefined()
    const dir = path.join(scratch, "secrets-loop")
    fs.mkdirSync(path.join(dir, "secrets"), { recursive: true })
    const examples = fs.readdirSync(path.join(checkout, "etc/prologin")).filter((f) => f.endsWith(".yml"))
    for (const f of examples) fs.copyFileSync(path.join(checkout, "etc/prologin", f), path.join(dir, f))
    const ran = await Effect.runPromise(runTool(["bash", "-euo", "pipefail", "-c", `cd ${JSON.stringify(dir)}\n${block ?? ""}`]))
    expect(ran.output).toBe("")
    expect(ran.code).toBe(0)
    const withSecret = examples.filter((f) => /^(shared|session)_secret:/m.test(fs.readFileSync(path.join(checkout, "etc/prologin", f), "utf8")))
    expect(withSecret).toEqual(expect.arrayContaining(["web.yml", "cluster.yml", "mdb-server.yml"]))
    for (const f of withSecret) {
      const name = f.replace(/\.yml$/, "")
      expect(fs.readFileSync(path.join(dir, f), "utf8"), f).toMatch(new RegExp(`^(shared|session)_secret: \\{ file: secrets/${name} \\}$`, "m"))
      expect(fs.readFileSync(path.join(dir, "secrets", name), "utf8"), f).toMatch(/^[0-9a-f]{64}\n$/)
      expect(fs.statSync(path.join(dir, "secrets", name)).mode & 0o077, f).toBe(0)
    }
    // The profiles read their new secret files.
    for (const profile of ["web", "cluster"]) {
      const load = loaders[profile] ?? Effect.void
      const decoded = await Effect.runPromise(Effect.either(load).pipe(Effect.provideService(ConfigDir, dir), Effect.provide(NodeFileSystem.layer)))
      expect(Either.isRight(decoded) ? "ok" : decoded.left.message, profile).toBe("ok")
    }
  })
})

describe("the gateway's nginx files", () => {
  it("nginx -t accepts sso/upstream.conf in http {} with the website's server {} (sso/handler, sso/protect)", async () => {
    const conf = path.join(scratch, "nginx")
    fs.mkdirSync(path.join(conf, "sso"), { recursive: true })
    fs.mkdirSync(path.join(conf, "sites"), { recursive: true })
    for (const f of ["handler", "protect"]) fs.copyFileSync(path.join(checkout, "etc/nginx/sso", f), path.join(conf, "sso", f))
    // The cache and the upstream host are the gateway's; here, the test's own directory and a
    // literal address (nginx -t resolves `web` at load).
    const upstream = fs.readFileSync(path.join(checkout, "etc/nginx/sso/upstream.conf"), "utf8").replace("/var/cache/nginx/sso", path.join(conf, "cache"))
    expect(upstream).not.toContain("/var/cache/nginx/sso")
    fs.writeFileSync(path.join(conf, "sso/upstream.conf"), upstream)
    const site = fs.readFileSync(path.join(checkout, "etc/nginx/sites/prolo-web.conf"), "utf8")
    expect(site).toContain("proxy_pass http://web:20000;")
    fs.writeFileSync(path.join(conf, "sites/prolo-web.conf"), site.replace("http://web:20000", "http://127.0.17.130:20000").replace("listen 80;", "listen 127.0.17.130:8080;"))
    const main = `pid ${path.join(conf, "nginx.pid")};\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  include sso/upstream.conf;\n  include sites/prolo-web.conf;\n}\n`
    fs.writeFileSync(path.join(conf, "nginx.conf"), main)
    const ok = await Effect.runPromise(runTool(["nginx", "-t", "-p", conf, "-c", path.join(conf, "nginx.conf")]))
    expect(ok.output).toContain("test is successful")
    expect(ok.code).toBe(0)
    // The check can fail: without sso/handler and the upstream, $sso_backend_status (set by the
    // handler) is unknown to nginx.
    fs.writeFileSync(path.join(conf, "sites/prolo-web.conf"), fs.readFileSync(path.join(conf, "sites/prolo-web.conf"), "utf8").replace("include sso/handler;", ""))
    fs.writeFileSync(path.join(conf, "nginx.conf"), main.replace("include sso/upstream.conf;", ""))
    const bad = await Effect.runPromise(runTool(["nginx", "-t", "-p", conf, "-c", path.join(conf, "nginx.conf")]))
    expect(bad.code).not.toBe(0)
  })
})
