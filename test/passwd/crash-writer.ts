import { readFileSync } from "node:fs"
import { writeFileAtomic } from "../../src/actors/passwd/atomic-write.js"

// Child process of the crash test: rewrites three files in turn, alternating between two
// complete versions, until it is killed. argv: dir, then a JSON file {name: [versionA, versionB]}.
const [dir, spec] = process.argv.slice(2) as [string, string]
const versions = JSON.parse(readFileSync(spec, "utf8")) as Record<string, [string, string]>
let round = 0
process.stdout.write("ready\n")
for (;;) {
  round++
  for (const [name, pair] of Object.entries(versions)) {
    await writeFileAtomic(`${dir}/${name}`, pair[round % 2]!, 0o644)
  }
}
