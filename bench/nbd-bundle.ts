// How the benchmark and the mount e2e test start our NBD server: `prolo nbd serve` from the
// dist/ bundle (scripts/build.mjs), rebuilt first so it runs the current sources. Under tsx
// the same server took 12.5 s and 214 MiB to start on this 2-core box at load ~16, against
// 1.7 s and 86 MiB bundled; the shared mount script gives a server only 10 s to answer.
import { buildDist } from "../scripts/build.mjs"

// Node arguments before `--listen …`, run from the checkout's root. The bundle of the nbd entry itself (bin/prolo-nbd.ts),
// not bin/prolo.js: that launcher falls back to tsx as soon as any source is newer than
// dist/, which other engineers' edits cause mid-benchmark (measured: 268 MiB peak RSS
// and a slow start instead of 108 MiB).
export const nbdServeArgs = async (): Promise<string> => {
  await buildDist()
  return "dist/prolo-nbd.mjs nbd serve"
}
