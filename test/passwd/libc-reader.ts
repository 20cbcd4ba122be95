import koffi from "koffi"

// Reads account files with glibc's own parsers (fgetpwent, fgetspent, fgetgrent): what
// getent and every NSS "files" lookup would see.

const libc = koffi.load("libc.so.6")
const FILE = koffi.opaque("FILE")
const Passwd = koffi.struct("prolo_test_passwd", {
  pw_name: "str",
  pw_passwd: "str",
  pw_uid: "uint32",
  pw_gid: "uint32",
  pw_gecos: "str",
  pw_dir: "str",
  pw_shell: "str"
})
const Spwd = koffi.struct("prolo_test_spwd", {
  sp_namp: "str",
  sp_pwdp: "str",
  sp_lstchg: "long",
  sp_min: "long",
  sp_max: "long",
  sp_warn: "long",
  sp_inact: "long",
  sp_expire: "long",
  sp_flag: "ulong"
})
const GroupStruct = koffi.struct("prolo_test_group", {
  gr_name: "str",
  gr_passwd: "str",
  gr_gid: "uint32",
  gr_mem: "void *"
})
const fopen = libc.func("FILE *fopen(const char *path, const char *mode)")
const fclose = libc.func("int fclose(FILE *f)")
const fgetpwent = libc.func("prolo_test_passwd *fgetpwent(FILE *f)")
const fgetspent = libc.func("prolo_test_spwd *fgetspent(FILE *f)")
const fgetgrent = libc.func("prolo_test_group *fgetgrent(FILE *f)")
void FILE

const readAll = <A>(file: string, next: (f: unknown) => unknown, decode: (p: unknown) => A): Array<A> => {
  const f = fopen(file, "r")
  if (f === null) throw new Error(`cannot open ${file}`)
  const out: Array<A> = []
  try {
    for (;;) {
      const p = next(f)
      if (p === null) break
      out.push(decode(p))
    }
  } finally {
    fclose(f)
  }
  return out
}

export const libcPasswd = (file: string) =>
  readAll(file, fgetpwent, (p) => koffi.decode(p, Passwd) as {
    pw_name: string
    pw_passwd: string
    pw_uid: number
    pw_gid: number
    pw_gecos: string
    pw_dir: string
    pw_shell: string
  })

export const libcShadow = (file: string) =>
  readAll(file, fgetspent, (p) => koffi.decode(p, Spwd) as { sp_namp: string; sp_pwdp: string; sp_lstchg: number })

export const libcGroup = (file: string) =>
  readAll(file, fgetgrent, (p) => {
    const g = koffi.decode(p, GroupStruct) as { gr_name: string; gr_passwd: string; gr_gid: number; gr_mem: unknown }
    const members: Array<string> = []
    for (let i = 0; ; i++) {
      const s = koffi.decode(g.gr_mem, i * 8, "char *") as string | null
      if (s === null) break
      members.push(s)
    }
    return { name: g.gr_name, password: g.gr_passwd, gid: g.gr_gid, members }
  })
