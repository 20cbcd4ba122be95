import type { User } from "../../protocols/udb.js"

// root's authorized_keys = the SSH keys of UDB users of group `root` (original udbsync_rootssh).
// Sorted by login so that the file only changes when a key does.
export const authorizedKeys = (users: ReadonlyArray<Pick<User, "login" | "group" | "ssh_key">>): string => {
  const keys = users
    .filter((u) => u.group === "root" && u.ssh_key !== null && u.ssh_key.trim() !== "")
    .sort((a, b) => (a.login < b.login ? -1 : a.login > b.login ? 1 : 0))
    .map((u) => u.ssh_key!.trim())
  return keys.length === 0 ? "" : `${keys.join("\n")}\n`
}
