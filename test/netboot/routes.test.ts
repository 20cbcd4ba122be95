import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { RegistrationGate } from "../../src/actors/mdb/registration-gate.js"
import { Mdb } from "../../src/actors/mdb/service.js"
import { netbootRoutes } from "../../src/actors/netboot/routes.js"
import { BOOTSTRAP_TEMPLATE, SWITCH_MARKER } from "../../src/actors/netboot/scripts.js"
import { httpHostLayer } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { call } from "../support/http.js"
import { gw, MdbTest, resetMdb } from "../mdb/support.js"

// netboot's scripts over a real HTTP server and a real MDB database, compared with the texts
// of spec mdb.md §6.

const OPTIONS = "root=/dev/nfs ip=${ip}:${next-server}:${gateway}:${netmask}:${hostname}.prolo:eth0:none nosplash rootdelay=0"
const hostWith = (gate: Layer.Layer<RegistrationGate>) =>
  httpHostLayer(netbootRoutes({ options: OPTIONS, fallback: true }), { listen: { host: "127.0.0.1", port: 0 } }).pipe(Layer.provide(gate))
const Host = hostWith(RegistrationGate.layer({ enabled: true, perSourcePerMinute: 1000, perMinute: 1000 })).pipe(
  Layer.provideMerge(MdbTest),
  Layer.provideMerge(Metrics.layer)
)

const body = (path: string) => Effect.map(call(path), (r) => r.body)

describe("netboot", () => {
  it.live("/bootstrap: the script with one block per switch, in MDB order, blank-line separated", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const mdb = yield* Mdb
      expect(yield* body("/bootstrap")).toBe(BOOTSTRAP_TEMPLATE.replace(SWITCH_MARKER, ""))
      yield* mdb.addSwitch({ name: "sw-pas-1", chassis: "AA:00:00:00:00:01", room: "pasteur", rfs: 0, hfs: 1 })
      yield* mdb.addSwitch({ name: "sw-alt-1", chassis: "aa:00:00:00:00:02", room: "alt", rfs: 1, hfs: 2 })
      const script = yield* body("/bootstrap")
      expect(script).toContain(
        "set sw_name_0 aa:00:00:00:00:01\nset sw_rfs_0 0\nset sw_hfs_0 1\nset sw_room_0 pasteur\n\n" +
          "set sw_name_1 aa:00:00:00:00:02\nset sw_rfs_1 1\nset sw_hfs_1 2\nset sw_room_1 alt\n"
      )
      expect(script).not.toContain(SWITCH_MARKER)
      for (const line of [
        "set timeout 60",
        "set short_pasteur pas",
        "set short_alt alt",
        "chain http://netboot/boot/${mac}/ || goto reboot",
        "menu Machine not known by MDB. Do you want to register this machine?",
        "item lldp Yes (with LLDP, contestant only)",
        "item manual Yes (without LLDP)",
        "item no No",
        "item shell Drop to an iPXE shell",
        "chain http://netboot/register?hostname=${hostname}&mac=${mac}&rfs=${rfs}&hfs=${hfs}&room=${room}&mtype=${mtype} || goto reboot"
      ]) expect(script.split("\n")).toContain(line)
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("/boot/<mac>/: kernel from the machine's rfs (exact alias: rfs1 is not rfs10), unknown, faulty, missing RFS", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const mdb = yield* Mdb
      yield* mdb.addMachine(gw)
      yield* mdb.addMachine({ hostname: "a-rhfs10", mac: "00:00:00:00:01:10", mtype: "service", aliases: "rfs10,hfs10" })
      yield* mdb.addMachine({ hostname: "rhfs01", mac: "00:00:00:00:01:01", mtype: "service", aliases: "rfs1,hfs1" })
      yield* mdb.addMachine({ hostname: "pas-r01p01", mac: "aa:bb:cc:dd:ee:01", mtype: "user", rfs: 1 })
      yield* mdb.addMachine({ hostname: "pas-r01p02", mac: "aa:bb:cc:dd:ee:02", mtype: "user", rfs: 3 })
      expect(yield* body("/boot/AA:BB:CC:DD:EE:01/")).toBe(
        "#!ipxe\n" +
          "echo Booting the kernel on 192.168.1.2:/nfsroot\n" +
          "initrd http://rfs1/boot/initramfs-linux-fallback.img\n" +
          `boot http://rfs1/boot/vmlinuz-linux nfsroot=192.168.1.2:/export/nfsroot,ro ${OPTIONS}\n`
      )
      expect(yield* body("/boot/00:00:00:00:00:00/")).toBe(
        "#!ipxe\necho An error occurred: netboot can't find the MAC in MDB.\nsleep 30\nreboot\n"
      )
      expect(yield* body("/boot/aa:bb:cc:dd:ee:02/")).toBe(
        "#!ipxe\necho Registration failure! Something went wrong: No such RFS: rfs3\necho Waiting for 30s and rebooting.\nsleep 30\nreboot\n"
      )
      yield* mdb.updateMachine("pas-r01p01", { is_faulty: true, is_faulty_details: "dead disk\nreboot" })
      expect(yield* body("/boot/aa:bb:cc:dd:ee:01/")).toBe(
        "#!ipxe\necho ERROR: This machine was marked as faulty.\necho Reason: dead disk reboot\necho\nsleep 60\nreboot\n"
      )
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("/register: success and error scripts; 50 concurrent registrations get distinct names and addresses", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const mdb = yield* Mdb
      const url = (n: number, extra = "") =>
        `/register?hostname=pas-r02p${String(n).padStart(2, "0")}&mac=aa:bb:cc:00:01:${n.toString(16).padStart(2, "0")}&rfs=0&hfs=0&room=pasteur&mtype=user${extra}`
      const done = "#!ipxe\necho Registration done! Waiting for 30s and rebooting.\nsleep 30\nreboot\n"
      const failure = (msg: string) => `#!ipxe\necho Registration failure! Something went wrong: ${msg}\necho Waiting for 30s and rebooting.\nsleep 30\nreboot\n`
      const answers = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i + 1), (n) => body(url(n)), { concurrency: "unbounded" })
      expect(answers).toEqual(Array(50).fill(done))
      const machines = (yield* mdb.query({})).filter((m) => m.hostname.startsWith("pas-r02p"))
      expect(machines).toHaveLength(50)
      expect(new Set(machines.map((m) => m.ip)).size).toBe(50)
      expect(new Set(machines.map((m) => m.hostname)).size).toBe(50)

      expect(yield* body("/register?hostname=x&mac=aa:bb:cc:00:02:01")).toBe(failure("missing parameter(s): rfs, hfs, room, mtype"))
      expect(yield* body("/register?hostname=x&mac=aa:bb:cc:00:02:01&rfs=a&hfs=0&room=pasteur&mtype=user")).toBe(
        failure("invalid literal for int() with base 10: 'a'")
      )
      const dup = yield* body(url(1))
      expect(dup.startsWith("#!ipxe\necho Registration failure! Something went wrong: ")).toBe(true)
      expect(dup.split("\n")).toHaveLength(6)
      expect(yield* mdb.query({})).toHaveLength(50)
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("/register follows the registration policy: off refuses with its reason, a flood from one address is cut, nothing registered", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const mdb = yield* Mdb
      const url = (n: number) =>
        `/register?hostname=pas-r03p${String(n).padStart(2, "0")}&mac=aa:bb:cc:00:03:${n.toString(16).padStart(2, "0")}&rfs=0&hfs=0&room=pasteur&mtype=user`
      const off = yield* Effect.provide(body(url(1)), hostWith(RegistrationGate.layer({ enabled: false, perSourcePerMinute: 6, perMinute: 120 })))
      expect(off).toContain("Registration failure! Something went wrong: self registration is disabled on this node")
      expect(yield* mdb.query({})).toHaveLength(0)
      const limited = yield* Effect.provide(
        Effect.forEach([1, 2, 3], (n) => body(url(n))),
        hostWith(RegistrationGate.layer({ enabled: true, perSourcePerMinute: 2, perMinute: 120 }))
      )
      expect(limited.slice(0, 2).every((a) => a.includes("Registration done!"))).toBe(true)
      expect(limited[2]).toContain("Registration failure!")
      expect(yield* mdb.query({})).toHaveLength(2)
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(MdbTest, Metrics.layer)))
  )
})
