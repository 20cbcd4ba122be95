import * as fs from "node:fs/promises"
import * as path from "node:path"
import { checkout } from "./node-process.js"

// A test node's configuration directory: a copy of the example profiles (etc/prologin/*.yml),
// each one the test names rewritten by its edit (a profile the examples lack starts empty).

export type ProfileEdits = Readonly<Record<string, (text: string) => string>>

export const copyProfiles = async (dir: string, edits: ProfileEdits = {}): Promise<string> => {
  await fs.mkdir(dir, { recursive: true })
  const source = path.join(checkout, "etc/prologin")
  const names = new Set([...(await fs.readdir(source)).filter((f) => f.endsWith(".yml")), ...Object.keys(edits)])
  for (const name of names) {
    const text = await fs.readFile(path.join(source, name), "utf8").catch(() => "")
    await fs.writeFile(path.join(dir, name), edits[name]?.(text) ?? text)
  }
  return dir
}

/** hfs-server.yml's edit for a test: images under `exportBase`, the checkout's skeleton. */
export const hfsServerIn = (exportBase: string) => (text: string) =>
  text
    .replace(/^export_base: .*$/m, `export_base: ${exportBase}`)
    .replace(/^skeleton: .*$/m, `skeleton: ${path.join(checkout, "etc/skeleton")}`)
