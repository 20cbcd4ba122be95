import * as v8 from "node:v8"
import * as vm from "node:vm"
import { mallocTrim } from "./libc.js"

// Gives the memory a burst of load left behind back to the system, once the server has
// gone quiet (server.ts calls it after its idle period, never on the data path).
//
// Why both steps: the pool's dropped buffers are ArrayBuffers whose memory is freed only
// when V8 collects them, and an idle process allocates nothing that would make V8 collect;
// what V8 and libuv then free goes back to glibc, which keeps it in its arenas (measured:
// ~10 MiB after 50 clients of random 4 KiB I/O, back by malloc_trim alone). The collector
// is reached the way jest's leak detector does it (`--expose-gc` set at run time, `gc`
// read from a fresh context), since Node has no API for it without a start-up flag.
let collect: (() => void) | undefined

const collector = (): (() => void) => {
  if (collect === undefined) {
    v8.setFlagsFromString("--expose-gc")
    collect = vm.runInNewContext("gc") as () => void
  }
  return collect
}

// Two collections: V8 frees ArrayBuffer memory on a sweeper after the collection that
// found it dead, and the next collection waits for that sweeper; only then has glibc got
// the buffers back to trim (measured: one collection left 17 of 27 MiB in place).
export const releaseFreedMemory = (): void => {
  const gc = collector()
  gc()
  gc()
  mallocTrim()
}
