import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { type AccountTexts, regenerate, type RegenerateInput } from "../../src/actors/passwd/generate.js"
import { parseGroup, parsePasswd, parseShadow, renderGroup, renderPasswd } from "../../src/actors/passwd/account-files.js"
import { sha512Crypt, stableHasher, verifyCrypt } from "../../src/runtime/shadow-hash.js"
import { Redacted } from "effect"
import { baseFiles, fakeHash, user, users } from "./fixtures.js"
import { libcGroup, libcPasswd, libcShadow } from "./libc-reader.js"

const input = (over: Partial<RegenerateInput> = {}): RegenerateInput => ({
  current: baseFiles,
  users,
  today: 20000,
  ...over
})

const run = (over: Partial<RegenerateInput> = {}) => {
  const result = regenerate(input(over))
  if (Either.isLeft(result)) throw new Error(`unexpected failure: ${result.left.message}`)
  return result.right
}

const writeRoot = (files: AccountTexts): string => {
  const root = mkdtempSync(path.join(tmpdir(), "prolo-passwd-"))
  mkdirSync(path.join(root, "etc"))
  writeFileSync(path.join(root, "etc/passwd"), files.passwd)
  writeFileSync(path.join(root, "etc/shadow"), files.shadow, { mode: 0o600 })
  writeFileSync(path.join(root, "etc/group"), files.group)
  if (files.gshadow !== null) writeFileSync(path.join(root, "etc/gshadow"), files.gshadow, { mode: 0o600 })
  return root
}

describe("passwd regeneration", () => {
  it("keeps local accounts verbatim, rebuilds managed ones, sorted by uid", () => {
    const out = run()
    expect(out.files.passwd).toBe(
      [
        "root:x:0:0:root:/root:/bin/bash",
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
        "alice:x:1000:1000:Alice Local,,,:/home/alice:/bin/bash",
        "jdoe:x:10001:10000:John Doe:/home/jdoe:/bin/bash",
        "orga1:x:11001:10001:Olga Orga:/home/orga1:/bin/bash",
        "root1:x:12001:10:Rita Root:/home/root1:/bin/bash",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
        ""
      ].join("\n")
    )
    expect(out.files.shadow).toBe(
      [
        "root:*:19000:0:99999:7:::",
        "daemon:*:19000:0:99999:7:::",
        "alice:$6$abc$def:19000:0:99999:7:::",
        `jdoe:${fakeHash("pw-jdoe")}:20000:0:99999:7:0::`,
        `orga1:${fakeHash("pw-orga1")}:20000:0:99999:7:0::`,
        `root1:${fakeHash("pw-root1")}:20000:0:99999:7:0::`,
        "nobody:*:19000:0:99999:7:::",
        ""
      ].join("\n")
    )
    // gone leaves every group; alice stays in audio; wheel and orga are created.
    expect(out.files.group).toBe(
      [
        "root:x:0:",
        "daemon:x:1:",
        "wheel:x:10:root1",
        "audio:x:29:alice",
        "alice:x:1000:",
        "user:x:10000:jdoe,orga1,root1",
        "orga:x:10001:orga1,root1",
        "nogroup:x:65534:",
        ""
      ].join("\n")
    )
    expect(out.files.gshadow).toBe(
      [
        "root:*::",
        "daemon:*::",
        "wheel:!::root1",
        "audio:*::alice",
        "alice:!::",
        "user:!::jdoe,orga1,root1",
        "orga:!::orga1,root1",
        "nogroup:*::",
        ""
      ].join("\n")
    )
    expect(out.rehashed).toEqual(["jdoe", "orga1", "root1"])
    expect(out.skipped).toEqual([])
  })

  it("is a fixed point: regenerating its own output changes nothing and re-hashes nobody", () => {
    const first = run()
    const second = run({ current: first.files, today: 20010 })
    expect(second.files).toEqual(first.files)
    expect(second.rehashed).toEqual([])
  })

  it("renews only the shadow line of the user whose hash changed", () => {
    const first = run()
    const changed = users.map((u) => (u.login === "orga1" ? { ...u, password_hash: fakeHash("new-secret") } : u))
    const second = run({ current: first.files, users: changed, today: 20010 })
    expect(second.rehashed).toEqual(["orga1"])
    const lines = second.files.shadow.split("\n")
    expect(lines).toContain(`orga1:${fakeHash("new-secret")}:20010:0:99999:7:0::`)
    expect(lines).toContain(`jdoe:${fakeHash("pw-jdoe")}:20000:0:99999:7:0::`)
  })

  it("keeps the hub's stable SHA-512-crypt hashes stable across regenerations", () => {
    // Two hashers with the same key: the hub before and after a restart.
    const hashed = (hash: (login: string, password: string) => string) =>
      users.slice(0, 1).map((u) => ({ ...u, password_hash: hash(u.login, `pw-${u.login}`) }))
    const key = Redacted.make("udbsync-pub")
    const first = run({ users: hashed(stableHasher(key)) })
    const second = run({ current: first.files, users: hashed(stableHasher(key)), today: 20010 })
    expect(second.files.shadow).toBe(first.files.shadow)
    expect(second.rehashed).toEqual([])
    const hash = first.files.shadow.split("\n").find((l) => l.startsWith("jdoe:"))!.split(":")[1]!
    expect(hash.startsWith("$6$")).toBe(true)
    expect(verifyCrypt("pw-jdoe", hash)).toBe(true)
  })

  it("removes a deleted user from passwd, shadow and every group", () => {
    const first = run()
    const second = run({ current: first.files, users: users.filter((u) => u.login !== "root1") })
    for (const text of Object.values(second.files)) expect(text).not.toContain("root1")
    expect(second.files.group).toContain("wheel:x:10:\n")
  })

  it("skips a UDB user whose login is a local account, keeping the local one", () => {
    const out = run({ users: [...users, user({ login: "alice", uid: 10002 })] })
    expect(out.skipped).toEqual([{ login: "alice", reason: "login is a local account of this machine" }])
    expect(out.files.passwd).toContain("alice:x:1000:1000:Alice Local,,,:/home/alice:/bin/bash")
    expect(out.files.passwd).not.toContain("10002")
    expect(out.files.group).toContain("audio:x:29:alice\n")
  })

  it("skips users with a uid outside the managed range or a shell that would break the file", () => {
    const out = run({
      users: [user({ login: "low", uid: 999 }), user({ login: "colon", uid: 10009, shell: "/bin/sh:x" })]
    })
    expect(out.skipped.map((s) => s.login)).toEqual(["colon", "low"])
    expect(out.files.passwd).not.toMatch(/^(low|colon):/m)
  })

  it("sanitises names that would break the passwd format", () => {
    const out = run({ users: [user({ login: "weird", uid: 10003, firstname: "A:B", lastname: "C\nD" })] })
    expect(out.files.passwd).toContain("weird:x:10003:10000:A B C D:/home/weird:/bin/bash\n")
  })

  it.each([
    ["passwd", { ...baseFiles, passwd: `${baseFiles.passwd}broken line\n` }, "passwd:6: expected 7 colon-separated fields, got 1"],
    ["passwd uid", { ...baseFiles, passwd: `x:x:abc:0:g:/h:/s\n${baseFiles.passwd}` }, "passwd:1: uid is not a number"],
    ["shadow", { ...baseFiles, shadow: `${baseFiles.shadow}a:b\n` }, "shadow:6: expected 9 colon-separated fields, got 2"],
    ["group", { ...baseFiles, group: `bad group:x:5:\n${baseFiles.group}` }, 'group:1: invalid group name "bad group"'],
    ["gshadow", { ...baseFiles, gshadow: `g:!::a b\n` }, 'gshadow:1: invalid member name "a b"']
  ])("refuses an unparsable %s line, naming file and line", (_name, current, message) => {
    const result = regenerate(input({ current }))
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left._tag).toBe("UnparsableLine")
      expect(result.left.message.slice(0, message.length)).toBe(message)
    }
  })

  it("accepts local names the original refused (uppercase, dot, machine accounts)", () => {
    const current = {
      ...baseFiles,
      passwd: `${baseFiles.passwd}Admin.X:x:1001:1001::/home/a:/bin/sh\nws1$:x:1002:1002::/nonexistent:\n`,
      shadow: `${baseFiles.shadow}Admin.X:!:1:0:99999:7:::\nws1$:!:1:0:99999:7:::\n`
    }
    const out = run({ current })
    expect(out.files.passwd).toContain("Admin.X:x:1001:1001::/home/a:/bin/sh\n")
  })

  it("refuses to create a managed group over a gid another group holds", () => {
    const current = { ...baseFiles, group: `uucp:x:10:\n${baseFiles.group}` }
    const result = regenerate(input({ current }))
    expect(Either.isLeft(result) && result.left.message).toBe(
      "cannot create group wheel with gid 10: that gid belongs to group uucp; create group wheel locally"
    )
    // An operator-chosen gid resolves it.
    expect(run({ current, groupGids: { wheel: 27 } }).files.group).toContain("wheel:x:27:root1\n")
  })

  it("uses the local gid of an existing managed group as the primary group", () => {
    const current = { ...baseFiles, group: `wheel:x:998:alice\n${baseFiles.group}` }
    const out = run({ current })
    expect(out.files.passwd).toContain("root1:x:12001:998:")
    expect(out.files.group).toContain("wheel:x:998:alice,root1\n")
  })

  it("round-trips through its own parsers and glibc's", () => {
    const out = run()
    const passwd = parsePasswd(out.files.passwd)
    const group = parseGroup(out.files.group)
    if ("error" in passwd || "error" in group) throw new Error("unparsable output")
    expect(passwd.entries.map((e) => renderPasswd(e)).join("\n") + "\n").toBe(out.files.passwd)
    expect(group.entries.map((e) => renderGroup(e)).join("\n") + "\n").toBe(out.files.group)
    expect("entries" in parseShadow(out.files.shadow)).toBe(true)

    const root = writeRoot(out.files)
    try {
      const pw = libcPasswd(path.join(root, "etc/passwd"))
      expect(pw.map((p) => [p.pw_name, p.pw_uid, p.pw_gid, p.pw_gecos, p.pw_dir, p.pw_shell])).toEqual(
        passwd.entries.map((e) => [e.login, e.uid, e.gid, e.gecos, e.home, e.shell])
      )
      const sp = libcShadow(path.join(root, "etc/shadow"))
      expect(sp.find((s) => s.sp_namp === "jdoe")).toMatchObject({ sp_pwdp: fakeHash("pw-jdoe"), sp_lstchg: 20000 })
      expect(sp.map((s) => s.sp_namp)).toEqual(passwd.entries.map((e) => e.login))
      const gr = libcGroup(path.join(root, "etc/group"))
      expect(gr).toEqual(group.entries.map((e) => ({ name: e.name, password: e.password, gid: e.gid, members: e.members })))
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it("passes pwck and grpck on a temporary root", () => {
    const root = writeRoot(run({ users: users.map((u) => ({ ...u, password_hash: sha512Crypt(`pw-${u.login}`) })) }).files)
    try {
      // -q: errors only; must be silent and succeed.
      execFileSync("pwck", ["-R", root, "-r", "-q"], { stdio: "pipe" })
      execFileSync("grpck", ["-R", root, "-r"], { stdio: "pipe" })
      // Without -q the only remarks allowed are about homes and shells absent from the temp root
      // (a missing primary group, for one, would show here).
      const loud = spawnSync("pwck", ["-R", root, "-r"], { encoding: "utf8" })
      const remarks = `${loud.stdout}${loud.stderr}`
        .split("\n")
        .filter((l) => l !== "" && !/^user '.*': (directory|program) '.*' does not exist$/.test(l) && l !== "pwck: no changes")
      expect(remarks).toEqual([])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it("pwck catches a broken file (the check above can fail)", () => {
    const out = run()
    const root = writeRoot({ ...out.files, group: out.files.group.replace("user:x:10000:jdoe,orga1,root1\n", "") })
    try {
      const loud = spawnSync("pwck", ["-R", root, "-r"], { encoding: "utf8" })
      expect(`${loud.stdout}${loud.stderr}`).toContain("user 'jdoe': no group 10000")
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})

describe("SHA-512-crypt", () => {
  it("matches openssl passwd -6 for a given salt", () => {
    for (const [password, salt] of [
      ["secret", "abcdefgh"],
      ["Ünïcödé pw", "0123456789abcdef"],
      ["x7Hk9mPq", "./AZaz09"]
    ] as const) {
      const expected = execFileSync("openssl", ["passwd", "-6", "-salt", salt, password], { encoding: "utf8" }).trim()
      expect(sha512Crypt(password, salt)).toBe(expected)
      expect(verifyCrypt(password, expected)).toBe(true)
      expect(verifyCrypt(`${password}x`, expected)).toBe(false)
    }
  })

  it("uses a fresh 16-character salt each time and never verifies non-SHA hashes", () => {
    const a = sha512Crypt("pw")
    const b = sha512Crypt("pw")
    expect(a).not.toBe(b)
    expect(a).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/)
    expect(verifyCrypt("pw", "$1$old$hash")).toBe(false)
    expect(verifyCrypt("pw", "!")).toBe(false)
  })

  it("a stable hasher: one hash per login, password and key, a valid SHA-512-crypt of that password", () => {
    const hash = stableHasher(Redacted.make("key-a"))
    const h = hash("jdoe", "pw")
    expect(h).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/)
    expect(verifyCrypt("pw", h)).toBe(true)
    expect(stableHasher(Redacted.make("key-a"))("jdoe", "pw")).toBe(h)
    // Another user, another password or another site: another salt.
    const salt = (x: string) => x.split("$")[2]
    expect(salt(hash("jdoe2", "pw"))).not.toBe(salt(h))
    expect(salt(hash("jdoe", "pw2"))).not.toBe(salt(h))
    expect(salt(stableHasher(Redacted.make("key-b"))("jdoe", "pw"))).not.toBe(salt(h))
  })
})
