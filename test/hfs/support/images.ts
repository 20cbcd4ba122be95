import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

// Helpers of the HFS tests: real tools on real image files.

export const run = (command: string, args: ReadonlyArray<string>): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(command, [...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    )
  })

export const tempDir = (prefix: string) => fs.mkdtemp(path.join(os.tmpdir(), prefix))

/** A skeleton with a root part and per-type parts, as /export/skeleton. */
export const makeSkeleton = async (root: string): Promise<string> => {
  const skel = path.join(root, "skeleton")
  await fs.mkdir(path.join(skel, ".config"), { recursive: true })
  await fs.writeFile(path.join(skel, ".bashrc"), "# default\n")
  await fs.writeFile(path.join(skel, ".config", "i3"), "bindsym $mod+Return exec xterm\n")
  await fs.mkdir(path.join(skel, "orga"), { recursive: true })
  await fs.writeFile(path.join(skel, "orga", ".bashrc"), "# orga\n")
  return skel
}

/** `e2fsck -fn`: exit 0 means clean, read-only check. */
export const fsck = (image: string) => run("e2fsck", ["-fn", image])

/** debugfs request on an image (read-only). */
export const debugfs = async (image: string, request: string): Promise<string> => (await run("debugfs", ["-R", request, image])).stdout

export const allocatedBytes = async (file: string): Promise<number> => (await fs.stat(file)).blocks * 512
