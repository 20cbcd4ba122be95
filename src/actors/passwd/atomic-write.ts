import { randomBytes } from "node:crypto"
import { constants } from "node:fs"
import { open, readdir, rename, stat, unlink } from "node:fs/promises"
import * as path from "node:path"

// Replace a file so that a reader, or a crash at any instant, sees either the old
// or the new complete content: temp file in the same directory, fsync, rename,
// fsync of the directory. Plain promises (no Effect) so that the crash test can run
// it in a bare child process.

const TEMP_MARK = ".prolo-tmp-"

const tempPrefix = (target: string): string => `.${path.basename(target)}${TEMP_MARK}`

const errno = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

/**
 * Writes `content` to `target` atomically. An existing target keeps its mode and owner
 * (e.g. Debian's `root:shadow 0640` shadow); a new one gets `mode` and the writer's owner.
 */
export const writeFileAtomic = async (target: string, content: string | Uint8Array, mode: number): Promise<void> => {
  const dir = path.dirname(target)
  let finalMode = mode
  let owner: { uid: number; gid: number } | undefined
  try {
    const st = await stat(target)
    finalMode = st.mode & 0o7777
    owner = { uid: st.uid, gid: st.gid }
  } catch (e) {
    if (errno(e) !== "ENOENT") throw e
  }
  const temp = path.join(dir, `${tempPrefix(target)}${process.pid}-${randomBytes(4).toString("hex")}`)
  const file = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    try {
      if (owner !== undefined && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        await file.chown(owner.uid, owner.gid)
      }
      await file.chmod(finalMode)
      await file.writeFile(content)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, target)
  } catch (e) {
    await unlink(temp).catch(() => undefined)
    throw e
  }
  const directory = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}

/** Removes temp files a killed writer left next to `target`; returns their names. */
export const removeStaleTemps = async (target: string): Promise<ReadonlyArray<string>> => {
  const dir = path.dirname(target)
  const prefix = tempPrefix(target)
  let names: ReadonlyArray<string>
  try {
    names = await readdir(dir)
  } catch (e) {
    if (errno(e) === "ENOENT") return []
    throw e
  }
  const stale = names.filter((n) => n.startsWith(prefix))
  for (const name of stale) await unlink(path.join(dir, name)).catch(() => undefined)
  return stale
}
