import * as path from "node:path"
import { Effect, Either, Schema } from "effect"
import { Machine } from "../../protocols/mdb.js"
import type { SyncRecord } from "../../protocols/sync.js"
import type { ToolResult } from "../../runtime/run-tool.js"
import { hasNameServer, parseSerial, recordsOf, renderZones, ZONES, type ZoneSpec, zoneFileName, zoneText } from "./render.js"
import { readText, validatedSwap } from "./swap.js"

// From a state of the `mdb` topic to the zone files on disk: render every zone, and for each
// zone whose records changed, bump its own serial, validate and swap the file. Returns the
// zones replaced, for the reloader.

const decodeMachine = Schema.decodeUnknownEither(Machine)

export const machinesOf = (state: ReadonlyMap<string, SyncRecord>): { machines: Array<Machine>; invalid: Array<string> } => {
  const machines: Array<Machine> = []
  const invalid: Array<string> = []
  for (const [key, record] of state) {
    const decoded = decodeMachine(record)
    if (Either.isRight(decoded)) machines.push(decoded.right)
    else invalid.push(key)
  }
  return { machines, invalid }
}

export interface ZoneWriterOptions {
  readonly dir: string
  /** named-checkzone for `origin` on `file`. */
  readonly checkZone: (origin: string, file: string) => Effect.Effect<ToolResult>
}

/** A writer that remembers the records of each zone it last wrote (read back from disk at first use). */
export const makeZoneWriter = (options: ZoneWriterOptions) => {
  const written = new Map<string, string>()
  let waitingForNs = false
  return (machines: Iterable<Machine>) =>
    Effect.gen(function* () {
      const rendered = renderZones(machines)
      for (const s of rendered.skipped) yield* Effect.logWarning(`dns: machine ${s.hostname}: ${s.reason}; left out of the zones`)
      const changed: Array<ZoneSpec> = []
      for (const zone of ZONES) {
        const records = rendered.records.get(zone.name)!
        const file = path.join(options.dir, zoneFileName(zone))
        const current = written.has(zone.name) ? undefined : yield* readText(file)
        if (current !== undefined) {
          const onDisk = recordsOf(current)
          if (onDisk !== undefined) written.set(zone.name, onDisk)
        }
        if (written.get(zone.name) === records) continue
        if (zone.origin === "prolo" && !hasNameServer(records)) {
          if (!waitingForNs) {
            yield* Effect.logWarning(
              `dns: zone prolo (${zone.view} view) not written yet: no machine in MDB has the alias "ns" (the gateway: add it with \`prolo mdb add … --aliases ns,…\`); ${written.has(zone.name) || current !== undefined ? "the last written zone stays live" : "no zone prolo is served until then"}`
            )
          }
          waitingForNs = true
          continue
        }
        if (zone.origin === "prolo") waitingForNs = false
        // The serial of the live file, not of a rejected one: a refused zone is never served.
        const serial = (parseSerial((yield* readText(file)) ?? "") ?? 0) + 1
        const outcome = yield* validatedSwap({
          target: file,
          content: zoneText(records, serial),
          validate: (candidate) => options.checkZone(zone.origin, candidate),
          service: "dns"
        })
        if (outcome._tag === "Written") {
          written.set(zone.name, records)
          changed.push(zone)
        }
      }
      return changed
    })
}
