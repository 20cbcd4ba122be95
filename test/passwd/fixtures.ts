import type { HashedUser } from "../../src/protocols/udb.js"
import type { AccountTexts } from "../../src/actors/passwd/generate.js"

// A small Debian-like root: system accounts, a local user (alice, uid 1000) and a
// previously managed account (gone, uid 10005) that the UDB no longer has.
export const baseFiles: AccountTexts = {
  passwd: [
    "root:x:0:0:root:/root:/bin/bash",
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
    "alice:x:1000:1000:Alice Local,,,:/home/alice:/bin/bash",
    "gone:x:10005:10000:Gone User:/home/gone:/bin/bash",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    ""
  ].join("\n"),
  shadow: [
    "root:*:19000:0:99999:7:::",
    "daemon:*:19000:0:99999:7:::",
    "alice:$6$abc$def:19000:0:99999:7:::",
    "gone:$1$old$hash:19000:0:99999:7:0::",
    "nobody:*:19000:0:99999:7:::",
    ""
  ].join("\n"),
  group: [
    "root:x:0:",
    "daemon:x:1:",
    "audio:x:29:alice,gone",
    "alice:x:1000:",
    "user:x:10000:gone",
    "nogroup:x:65534:",
    ""
  ].join("\n"),
  gshadow: ["root:*::", "daemon:*::", "audio:*::alice,gone", "alice:!::", "user:!::gone", "nogroup:*::", ""].join("\n")
}

/** Deterministic stand-in for SHA-512-crypt, so expected files can be spelled out. */
export const fakeHash = (password: string): string => `$6$fake$${Buffer.from(password).toString("hex")}`

/** A user as the udb topic's `hashes` audience sends it (its hash: `fakeHash("pw-<login>")`). */
export const user = (over: Partial<HashedUser> & Pick<HashedUser, "login" | "uid">): HashedUser => ({
  id: over.uid,
  firstname: "First",
  lastname: "Last",
  group: "user",
  password_hash: fakeHash(`pw-${over.login}`),
  shell: "/bin/bash",
  ssh_key: null,
  ...over
})

export const users: ReadonlyArray<HashedUser> = [
  user({ login: "jdoe", uid: 10001, firstname: "John", lastname: "Doe" }),
  user({ login: "orga1", uid: 11001, group: "orga", firstname: "Olga", lastname: "Orga" }),
  user({ login: "root1", uid: 12001, group: "root", firstname: "Rita", lastname: "Root", ssh_key: "ssh-ed25519 AAAA rita" })
]
