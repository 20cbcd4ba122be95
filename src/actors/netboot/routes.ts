import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, type Layer, Option } from "effect"
import { RegistrationGate } from "../mdb/registration-gate.js"
import { Mdb } from "../mdb/service.js"
import {
  bootScript,
  bootstrapScript,
  faultyScript,
  initrdName,
  registrationDoneScript,
  registrationErrorScript,
  unknownMacScript
} from "./scripts.js"

// netboot's HTTP endpoints (the original's paths): /bootstrap, /boot/<mac>/, /register. Every
// answer is an iPXE script with status 200, errors included: iPXE runs whatever it gets, so an
// error is a script that says what went wrong and reboots.

export interface NetbootOptions {
  /** Kernel command line after `nfsroot=...` (netboot.yml `options`). */
  readonly options: string
  /** initramfs-linux-fallback.img rather than initramfs-linux.img. */
  readonly fallback: boolean
}

// A value printed by `echo` must stay on its line: a newline would start an iPXE command.
const oneLine = (text: string): string => text.replace(/[\r\n]+/g, " ")

const script = (body: string) => HttpServerResponse.text(body, { contentType: "text/plain; charset=utf-8" })

const REGISTER_FIELDS = ["hostname", "mac", "rfs", "hfs", "room", "mtype"] as const

/** Message of an MDB failure, as the original's RPC error text. */
const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message !== ""
    ? e.message
    : String(e)

export const netbootRoutes = (options: NetbootOptions): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Mdb | RegistrationGate> =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function* () {
      const mdb = yield* Mdb
      // The same self-registration policy as MDB's own /call/register: off unless
      // mdb-registration.yml enables it, rate-limited per booting machine's address and overall.
      const gate = yield* RegistrationGate
      const errorScript = (e: unknown) => Effect.succeed(script(registrationErrorScript(oneLine(messageOf(e)))))

      yield* router.add(
        "GET",
        "/bootstrap",
        mdb.switches({}).pipe(
          Effect.map((switches) => script(bootstrapScript(switches))),
          Effect.catchAll(errorScript)
        )
      )

      const boot = (mac: string) =>
        Effect.gen(function* () {
          const found = yield* mdb.query({ mac })
          if (found.length !== 1) return script(unknownMacScript())
          const machine = found[0]!
          if (machine.is_faulty) return script(faultyScript(oneLine(machine.is_faulty_details)))
          // Exact alias match: the original's substring filter made rfs1 match rfs10. Our MDB's
          // aliases__contains already matches whole aliases; checked again so that netboot does not
          // depend on that lookup's semantics.
          const rfsName = `rfs${machine.rfs}`
          const candidates = yield* mdb.query({ aliases__contains: rfsName })
          const rfs = candidates.find((m) => m.aliases.split(",").map((a) => a.trim()).includes(rfsName))
          if (rfs === undefined) return script(registrationErrorScript(`No such RFS: ${rfsName}`))
          return script(bootScript({ rfs: machine.rfs, rfsIp: rfs.ip, initrd: initrdName(options.fallback), options: options.options }))
        }).pipe(Effect.catchAll(errorScript))

      yield* router.add(
        "GET",
        "/boot/:mac/",
        Effect.flatMap(HttpRouter.params, (params) => boot((params.mac ?? "").toLowerCase()))
      )

      yield* router.add(
        "GET",
        "/register",
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const query = new URL(request.url, "http://netboot").searchParams
          const missing = REGISTER_FIELDS.filter((f) => query.get(f) === null)
          if (missing.length > 0) return yield* Effect.fail(`missing parameter(s): ${missing.join(", ")}`)
          const int = (f: "rfs" | "hfs") => {
            const v = query.get(f)!
            return /^-?[0-9]{1,9}$/.test(v) ? Effect.succeed(Number(v)) : Effect.fail(`invalid literal for int() with base 10: '${v}'`)
          }
          const rfs = yield* int("rfs")
          const hfs = yield* int("hfs")
          yield* gate.admit(Option.getOrUndefined(request.remoteAddress))
          yield* mdb.register({
            hostname: query.get("hostname")!,
            mac: query.get("mac")!,
            rfs,
            hfs,
            room: query.get("room")!,
            mtype: query.get("mtype")!
          })
          return script(registrationDoneScript())
        }).pipe(Effect.catchAll(errorScript))
      )
    })
  )
