import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  alive,
  C,
  CheckFailed,
  closedWithin,
  EINVAL,
  ERR,
  F,
  fail,
  IHAVEOPT,
  MiB,
  O,
  R,
  rawClient,
  rawSession,
  rname,
  T,
  TF,
  within
} from "./nbd-raw.js"
import { nbdsh, runTool } from "./nbd-serve.js"

// Our NBD conformance checks: every check of the black-box suite the project was first
// measured with (nbd-conformance.sh, 39 checks), written again as our own, driving the
// same real clients — raw sockets for what libnbd would refuse to send, libnbd through
// nbdsh, nbdinfo, nbdcopy and qemu-io. Every optional feature is required (the script's
// REQUIRE=all), unknown export names must be refused (STRICT_EXPORTS=1), and what the
// script only warns about (a SHOULD, a costly choice) fails here too: our server passed
// all 39 without a warning, and must keep doing so.
//
// Destructive: the checks write into the first ~112 MiB of the export (≥ 128 MiB needed).

export interface Features {
  readonly size: number
  readonly flush: boolean
  readonly fua: boolean
  readonly trim: boolean
  readonly zero: boolean
  readonly fastzero: boolean
  readonly cache: boolean
  readonly multi: boolean
  readonly df: boolean
  readonly ro: boolean
  readonly sr: boolean
  readonly bs: boolean
  readonly bmin: number
  readonly bpref: number
  readonly bmax: number
  readonly protocol: string
}

export interface CheckContext {
  readonly port: number
  readonly name: string
  // A known-sparse (read-only) export on the same server, for sparse_map.
  readonly sparse: string | undefined
  readonly features: Features
  // A scratch directory the checks may write files into.
  readonly dir: string
}

export interface Check {
  readonly name: string
  readonly description: string
  // Resolves with a note on success; throws (CheckFailed) on a failure.
  readonly run: (ctx: CheckContext) => Promise<string | void>
}

// ---- libnbd through nbdsh --------------------------------------------------------------

const prelude = (ctx: { readonly port: number; readonly name: string }, extra = "") => `
import nbd, hashlib, errno, random, threading, time, json
HOST, PORT, EXPORT = '127.0.0.1', '${ctx.port}', ${JSON.stringify(ctx.name)}
MIB = 1 << 20
class Fail(Exception): pass
def pattern(n, seed):
    out = bytearray(); i = 0
    while len(out) < n:
        out += hashlib.sha256(b'%d:%d' % (seed, i)).digest(); i += 1
    return bytes(out[:n])
def lib(sr=True, meta=True, strict=True, name=EXPORT):
    g = nbd.NBD(); g.set_export_name(name)
    if not sr: g.set_request_structured_replies(False)
    if meta and sr: g.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict: g.set_strict_mode(0)
    g.connect_tcp(HOST, PORT)
    return g
def done(g):
    try: g.shutdown()
    except Exception: pass
${extra}
`

// Runs `body` (Python, libnbd) in nbdsh; it prints `RESULT <note>` when it passes.
export const libnbd = async (ctx: { readonly port: number; readonly name: string }, body: string, timeoutMs = 120_000): Promise<string> => {
  const r = await nbdsh(`${prelude(ctx)}\n${body}`, timeoutMs)
  const result = /^RESULT ?(.*)$/m.exec(r.stdout)
  if (r.code !== 0 || result === null) {
    const lines = r.stderr.trim().split("\n")
    return fail(`nbdsh exit ${r.code}: ${lines.slice(-2).join(" | ").slice(0, 400)}`)
  }
  return result[1] ?? ""
}

export const probe = async (port: number, name: string): Promise<Features> => {
  const out = await libnbd(
    { port, name },
    `h2 = lib()
f = dict(size=h2.get_size(), flush=h2.can_flush(), fua=h2.can_fua(), trim=h2.can_trim(),
         zero=h2.can_zero(), fastzero=h2.can_fast_zero(), cache=h2.can_cache(),
         multi=h2.can_multi_conn(), df=h2.can_df(), ro=h2.is_read_only(),
         sr=h2.get_structured_replies_negotiated(),
         bs=bool(h2.get_structured_replies_negotiated() and h2.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)),
         bmin=h2.get_block_size(nbd.SIZE_MINIMUM), bpref=h2.get_block_size(nbd.SIZE_PREFERRED),
         bmax=h2.get_block_size(nbd.SIZE_MAXIMUM), protocol=h2.get_protocol())
done(h2)
print('RESULT ' + json.dumps({k: (bool(v) if isinstance(v, bool) else v) for k, v in f.items()}))`
  )
  return JSON.parse(out) as Features
}

// ---- helpers ---------------------------------------------------------------------------

const need = (ctx: CheckContext, feature: keyof Features, what: string = feature) => {
  if (!ctx.features[feature]) fail(`${what} not advertised (required)`)
}
const needSize = (ctx: CheckContext, n: number) => {
  if (ctx.features.size < n) fail(`export smaller than ${n / MiB} MiB (the checks need a 128 MiB scratch export)`)
}
const alignOk = (ctx: CheckContext) => ctx.features.bmin === 0 || ctx.features.bmin === 1
const py = (b: boolean) => (b ? "True" : "False")

const checks: Array<Check> = []
const check = (name: string, description: string, run: Check["run"]) => checks.push({ name, description, run })

// ---- handshake and negotiation, raw sockets ---------------------------------------------

check("greeting", "fixed-newstyle greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE flag, no unknown flags", async ({ port }) => {
  const r = await rawClient(port)
  const gf = await r.greet()
  r.opt(O.ABORT)
  await r.rep().catch(() => undefined)
  r.close()
  if (!(gf & 1)) fail(`NBD_FLAG_FIXED_NEWSTYLE not set (flags 0x${gf.toString(16)})`)
  if (gf & ~3) fail(`unknown handshake flags 0x${gf.toString(16)}`)
  return `handshake flags 0x${gf.toString(16)}${gf & 2 ? " (NO_ZEROES offered)" : ""}`
})

check("opt_list", "NBD_OPT_LIST: well-formed NBD_REP_SERVER replies then ACK; export listed", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  r.opt(O.LIST)
  const names: Array<string> = []
  for (;;) {
    const { option, type, data } = await r.rep()
    if (option !== O.LIST) fail(`reply for option ${option}`)
    if (type === R.SERVER) {
      const n = data.readUInt32BE(0)
      if (n > data.length - 4) fail(`REP_SERVER name length ${n} > data ${data.length - 4}`)
      names.push(data.subarray(4, 4 + n).toString("utf8"))
    } else if (type === R.ACK) break
    else if (type === ERR.POLICY) fail("listing refused by policy (ERR_POLICY)")
    else fail(`unexpected reply ${rname(type)}`)
  }
  // LIST with payload SHOULD be ERR_INVALID; the session must continue.
  r.opt(O.LIST, Buffer.from("junk"))
  let t: number
  for (;;) {
    const rep = await r.rep()
    t = rep.type
    if (t !== R.SERVER) break
  }
  r.opt(O.ABORT)
  await r.rep().catch(() => undefined)
  r.close()
  if (!names.includes(name)) fail(`export ${JSON.stringify(name)} not in list ${JSON.stringify(names)}`)
  if (t !== ERR.INVALID) fail(`LIST with payload answered ${rname(t)} (SHOULD be ERR_INVALID)`)
  return `exports ${JSON.stringify(names)}`
})

check("opt_info_go", "NBD_OPT_INFO then NBD_OPT_GO: same size/flags, HAS_FLAGS set, sane INFO_BLOCK_SIZE, then transmission works", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  const i = await r.go(name, [3, 1, 2], O.INFO)
  if (i.error !== undefined) fail(i.error === ERR.UNSUP ? "NBD_OPT_INFO unsupported (baseline MUST)" : `INFO failed: ${rname(i.error)}`)
  const g = await r.go(name, [3, 1, 2])
  if (g.error !== undefined) fail(`GO failed: ${rname(g.error)}`)
  if (i.size !== g.size || i.flags !== g.flags) fail(`INFO said size=${i.size} flags=0x${i.flags.toString(16)}, GO said size=${g.size} flags=0x${g.flags.toString(16)}`)
  if (!(g.flags & TF.HAS)) fail("NBD_FLAG_HAS_FLAGS clear")
  if (g.flags & TF.DF) fail("SEND_DF advertised without structured replies")
  if (g.flags & TF.FASTZERO && !(g.flags & TF.WZ)) fail("FAST_ZERO without WRITE_ZEROES")
  let sizes = "no INFO_BLOCK_SIZE (defaults)"
  if (g.blockSizes !== undefined) {
    const [mn, pf, mx] = g.blockSizes
    const p2 = (x: number) => x > 0 && (x & (x - 1)) === 0
    if (!(p2(mn) && mn <= 65536 && p2(pf) && pf >= Math.max(mn, 512) && mx >= pf)) fail(`bad INFO_BLOCK_SIZE ${mn}/${pf}/${mx}`)
    sizes = `block sizes ${mn}/${pf}/${mx}`
  }
  const ck = r.req(C.READ, 0, 4096)
  const { error, data } = await r.reply(ck)
  if (error !== 0 || data.length !== 4096) fail(`READ after GO failed (err ${error})`)
  r.req(C.DISC, 0, 0)
  r.close()
  return `size ${g.size} flags 0x${g.flags.toString(16)}; ${sizes}`
})

check("go_no_info", "NBD_OPT_GO with zero info requests (nbd-client 3.24 style) still yields NBD_INFO_EXPORT", async ({ port, name, features }) => {
  const r = await rawClient(port)
  await r.greet(1)
  const g = await r.goOk(name, [])
  const { error } = await r.reply(r.req(C.READ, 0, 512))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail(`READ failed ${error}`)
  if (g.size !== features.size) fail(`size ${g.size} != ${features.size}`)
})

check("export_name", "legacy NBD_OPT_EXPORT_NAME: u64 size + u16 flags + 124 zero bytes, then transmission", async ({ port, name, features }) => {
  const r = await rawClient(port)
  await r.greet(1) // no NO_ZEROES: 124 zeros expected
  r.opt(O.EXPORT_NAME, Buffer.from(name, "utf8"))
  const d = await r.c.read(10 + 124)
  if (!d.subarray(10).equals(Buffer.alloc(124))) fail("124 padding bytes not zero")
  const size = Number(d.readBigUInt64BE(0))
  if (size !== features.size) fail(`size ${size} != GO size ${features.size}`)
  const { error } = await r.reply(r.req(C.READ, 0, 512))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail(`READ failed ${error}`)
})

check("no_zeroes", "NO_ZEROES negotiated: EXPORT_NAME reply is exactly 10 bytes", async ({ port, name }) => {
  const r = await rawClient(port)
  const gf = await r.greet()
  if (!(gf & 2)) fail("server does not offer NBD_FLAG_NO_ZEROES")
  r.opt(O.EXPORT_NAME, Buffer.from(name, "utf8"))
  await r.c.read(10)
  // Would meet a 0x00000000 magic if zeros had been sent.
  const { error } = await r.reply(r.req(C.READ, 0, 512))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail(`READ failed ${error}`)
})

check("unknown_export", "GO for a non-existent export: error reply (ERR_UNKNOWN), negotiation continues", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  const g = await r.go(`no-such-export-${randomBytes(4).readUInt32BE(0)}`)
  if (g.error === undefined) {
    r.close()
    fail("server accepted an unknown export name")
  }
  try {
    await r.goOk(name)
    const { error } = await r.reply(r.req(C.READ, 0, 512))
    r.req(C.DISC, 0, 0)
    r.close()
    if (error !== 0) fail("READ after recovering GO failed")
  } catch (err) {
    r.close()
    if (err instanceof CheckFailed) throw err
    fail(`after ${rname(g.error as number)} the session did not continue (${String(err)})`)
  }
  if (g.error !== ERR.UNKNOWN) fail(`error was ${rname(g.error as number)} (expected ERR_UNKNOWN)`)
  return rname(ERR.UNKNOWN)
})

check("unknown_option", "unknown option (0x7ff0) with payload: ERR_UNSUP, next option still parsed", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  r.opt(0x7ff0, Buffer.alloc(37, "x"))
  const { option, type } = await r.rep()
  if (option !== 0x7ff0) fail(`reply echoes option ${option}`)
  if (type !== ERR.UNSUP) fail(`answered ${rname(type)}, expected ERR_UNSUP`)
  await r.goOk(name)
  const { error } = await r.reply(r.req(C.READ, 0, 512))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail("READ failed")
})

check("opt_abort", "NBD_OPT_ABORT answered with ACK", async ({ port }) => {
  const r = await rawClient(port)
  await r.greet()
  r.opt(O.ABORT)
  const rep = await r.rep().catch(() => undefined)
  r.close()
  if (rep === undefined) fail("server closed without ACK")
  else if (rep.type !== R.ACK) fail(`ABORT answered ${rname(rep.type)}`)
})

check("bad_client_flags", "unknown client flag bit set: server MUST close the connection", async ({ port }) => {
  const r = await rawClient(port)
  await r.greet(0x00000001 | 0x40000000)
  r.opt(O.LIST)
  const closed = await closedWithin(r.c, 5000)
  const talked = r.c.buffered() > 0
  r.close()
  if (!closed || talked) fail("server kept talking after unknown client flags 0x40000001")
})

check("opt_structured_reply", "NBD_OPT_STRUCTURED_REPLY: ACK; with payload SHOULD be ERR_INVALID", async (ctx) => {
  const r = await rawClient(ctx.port)
  await r.greet()
  r.opt(O.SR, Buffer.alloc(4))
  const t1 = (await r.rep()).type
  const t2 = await r.negotiateSr()
  r.opt(O.ABORT)
  await r.rep().catch(() => undefined)
  r.close()
  if (t1 === ERR.UNSUP && t2 === ERR.UNSUP) need(ctx, "sr", "structured replies")
  if (t2 !== R.ACK && t1 !== R.ACK) fail(`no ACK (answers ${rname(t1)} / ${rname(t2)})`)
  if (t1 === R.ACK) fail("accepted STRUCTURED_REPLY with payload (SHOULD be ERR_INVALID)")
})

check("meta_context", "SET/LIST_META_CONTEXT base:allocation (unknown namespace ignored); raw BLOCK_STATUS REQ_ONE reply well-formed", async (ctx) => {
  const r = await rawClient(ctx.port)
  await r.greet()
  if ((await r.negotiateSr()) !== R.ACK) need(ctx, "sr", "structured replies")
  const listed = await r.setMeta(["base:"], ctx.name, O.LIST_META)
  if (listed.error === ERR.UNSUP) need(ctx, "bs", "meta contexts / block status")
  if (listed.error !== undefined) fail(`LIST_META_CONTEXT base: -> ${rname(listed.error)}`)
  if (!listed.ctx.some(([, n]) => n === "base:allocation")) fail(`LIST_META_CONTEXT "base:" did not list base:allocation: ${JSON.stringify(listed.ctx)}`)
  const set = await r.setMeta(["x-nosuch-ns:thing", "base:allocation", "base:nosuchleaf"], ctx.name)
  if (set.error !== undefined) fail(`SET_META_CONTEXT -> ${rname(set.error)}`)
  if (JSON.stringify(set.ctx.map(([, n]) => n)) !== '["base:allocation"]') fail(`selected contexts ${JSON.stringify(set.ctx)}, expected only base:allocation`)
  const cid = (set.ctx[0] as [number, string])[0]
  await r.goOk(ctx.name)
  const { error, chunks } = await r.reply(r.req(C.BS, 0, 4096, F.REQ_ONE))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail(`BLOCK_STATUS error ${error}`)
  const bs = chunks.filter((c) => c.type === T.BS)
  if (bs.length !== 1) fail(`expected 1 BLOCK_STATUS chunk, got ${bs.length}`)
  const p = (bs[0] as { payload: Buffer }).payload
  if ((p.length - 4) % 8 !== 0 || p.length < 12) fail(`bad BLOCK_STATUS length ${p.length}`)
  if (p.readUInt32BE(0) !== cid) fail("context id mismatch")
  const n = (p.length - 4) / 8
  const len = p.readUInt32BE(4)
  if (n !== 1 || len === 0 || len > 4096) fail(`REQ_ONE: ${n} extents, first length ${len}`)
  if (!((chunks[chunks.length - 1]?.flags ?? 0) & 1)) fail("last chunk lacks DONE")
  return `context id ${cid}`
})

check("meta_before_sr", "SET_META_CONTEXT before STRUCTURED_REPLY: error reply (SHOULD ERR_INVALID), server survives", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  let outcome: { ctx: Array<[number, string]>; error: number | undefined } | undefined
  try {
    outcome = await r.setMeta(["base:allocation"], name)
  } catch {
    r.close()
    await alive(port, name)
    return "server closed the connection (allowed)"
  }
  r.close()
  await alive(port, name)
  if (outcome.error === undefined) fail(`ACKed with ${outcome.ctx.length} contexts (SHOULD be ERR_INVALID)`)
  else if (outcome.error !== ERR.INVALID && outcome.error !== ERR.UNSUP) fail(`answered ${rname(outcome.error)}`)
  return rname(outcome.error as number)
})

check("malformed_go", "GO with name length > option length: error or disconnect, never ACK; server survives", async ({ port, name }) => {
  const r = await rawClient(port)
  await r.greet()
  const nb = Buffer.from(name, "utf8")
  const data = Buffer.alloc(4 + nb.length + 2)
  data.writeUInt32BE(nb.length + 500, 0)
  nb.copy(data, 4)
  r.opt(O.GO, data)
  let outcome: string
  try {
    const rep = await within(r.rep(), 5000, "reply to the malformed GO")
    outcome = rname(rep.type)
    if (rep.type === R.ACK) fail("GO with bogus name length was ACKed")
    r.opt(O.ABORT)
    try {
      outcome += `, then ABORT->${rname((await within(r.rep(), 5000, "ABORT")).type)}`
    } catch (err) {
      outcome += `, then stream desynced/closed (${String(err)})`
    }
  } catch (err) {
    if (err instanceof CheckFailed && /ACKed/.test(err.message)) throw err
    outcome = r.c.isClosed() ? "closed" : "no answer (server waits for the missing bytes)"
  }
  r.close()
  await alive(port, name)
  return outcome
})

// ---- transmission through libnbd ------------------------------------------------------

check("read_write", "WRITE then READ 1 MiB round trip (default negotiation)", async (ctx) => {
  needSize(ctx, 2 * MiB)
  await libnbd(ctx, `g = lib(); d = pattern(MIB, 1)
g.pwrite(d, 0)
got = g.pread(MIB, 0); done(g)
if got != d: raise Fail('data mismatch')
print('RESULT')`)
  return `protocol ${ctx.features.protocol}, structured replies ${ctx.features.sr}`
})

check("read_write_simple", "same with simple replies only (kernel-style client)", async (ctx) => {
  needSize(ctx, 2 * MiB)
  await libnbd(ctx, `g = lib(sr=False); d = pattern(MIB, 2)
g.pwrite(d, MIB); got = g.pread(MIB, MIB); done(g)
if got != d: raise Fail('data mismatch')
print('RESULT')`)
})

check("unaligned_io", "unaligned I/O: odd offsets/lengths (1..4097 bytes) read back correctly", async (ctx) => {
  needSize(ctx, 4 * MiB)
  if (!alignOk(ctx)) fail(`server minimum block size ${ctx.features.bmin}`)
  await libnbd(ctx, `g = lib(); base = 2 * MIB
g.pwrite(b'\\xaa' * 65536, base)
shadow = bytearray(b'\\xaa' * 65536)
rnd = random.Random(7)
for i in range(40):
    off = rnd.randrange(0, 60000); n = rnd.choice([1, 3, 511, 513, 4095, 4097, 1000])
    buf = bytes(rnd.getrandbits(8) for _ in range(n))
    g.pwrite(buf, base + off); shadow[off:off + n] = buf
for i in range(40):
    off = rnd.randrange(0, 60000); n = rnd.choice([1, 7, 512, 4097])
    if g.pread(n, base + off) != bytes(shadow[off:off + n]): raise Fail('mismatch at +%d len %d' % (off, n))
if g.pread(65536, base) != bytes(shadow): raise Fail('full compare mismatch')
done(g)
print('RESULT')`)
})

check("flush", "NBD_CMD_FLUSH after writes succeeds", async (ctx) => {
  need(ctx, "flush")
  await libnbd(ctx, `g = lib(); g.pwrite(b'f' * 4096, 3 * MIB); g.flush(); done(g)
print('RESULT')`)
})

check("fua", "WRITE with NBD_CMD_FLAG_FUA succeeds and persists (read back)", async (ctx) => {
  need(ctx, "fua")
  needSize(ctx, 4 * MiB)
  await libnbd(ctx, `g = lib(); d = pattern(65536, 3)
g.pwrite(d, 3 * MIB + 8192, nbd.CMD_FLAG_FUA)
if g.pread(65536, 3 * MIB + 8192) != d: raise Fail('mismatch')
done(g)
print('RESULT')`)
})

check("trim", "NBD_CMD_TRIM (1 MiB, and FUA) succeeds; region rewritable afterwards", async (ctx) => {
  need(ctx, "trim")
  needSize(ctx, 8 * MiB)
  await libnbd(ctx, `g = lib(); base = 4 * MIB
g.pwrite(pattern(MIB, 4), base)
g.trim(MIB, base)
if ${py(ctx.features.fua)}: g.trim(65536, base, nbd.CMD_FLAG_FUA)
d = pattern(4096, 5); g.pwrite(d, base + 12345)
if g.pread(4096, base + 12345) != d: raise Fail('rewrite after trim mismatch')
done(g)
print('RESULT')`)
})

check("write_zeroes", "WRITE_ZEROES with and without NO_HOLE (+FUA) reads back as zeros", async (ctx) => {
  need(ctx, "zero", "WRITE_ZEROES")
  needSize(ctx, 8 * MiB)
  await libnbd(ctx, `g = lib(); base = 5 * MIB
g.pwrite(pattern(2 * MIB, 6), base)
g.zero(MIB, base)
g.zero(MIB // 2, base + MIB, nbd.CMD_FLAG_NO_HOLE)
if ${py(alignOk(ctx))}: g.zero(4096, base + MIB + MIB // 2 + 1, nbd.CMD_FLAG_FUA if ${py(ctx.features.fua)} else 0)
z = g.pread(MIB + MIB // 2, base)
if z != bytes(len(z)): raise Fail('zeroed range does not read as zeros')
tail = g.pread(MIB // 2 - 8192, base + MIB + MIB // 2 + 8192)
if tail != pattern(2 * MIB, 6)[MIB + MIB // 2 + 8192:]: raise Fail('data beyond the zeroed range was changed')
done(g)
print('RESULT')`)
})

check("zero_large", "WRITE_ZEROES of 80 MiB (> 64 MiB) zeroes the whole range", async (ctx) => {
  need(ctx, "zero", "WRITE_ZEROES")
  needSize(ctx, 112 * MiB)
  await libnbd(ctx, `g = lib(); base = 32 * MIB; n = 80 * MIB
marks = [base, base + 40 * MIB, base + 70 * MIB, base + n - 4096]
for m in marks: g.pwrite(b'\\x5a' * 4096, m)
g.pwrite(b'\\x77' * 4096, base + n)
g.zero(n, base)
bad = [m for m in marks if g.pread(4096, m) != bytes(4096)]
after = g.pread(4096, base + n); done(g)
if bad: raise Fail('not zeroed at offsets %s' % ', '.join('%d MiB' % ((m - base) // MIB) for m in bad))
if after != b'\\x77' * 4096: raise Fail('zeroed beyond the requested range')
print('RESULT')`)
})

check("fast_zero", "WRITE_ZEROES+FAST_ZERO: success or quick ENOTSUP (data untouched)", async (ctx) => {
  need(ctx, "fastzero", "FAST_ZERO")
  needSize(ctx, 8 * MiB)
  return libnbd(ctx, `g = lib(); base = 7 * MIB; d = pattern(65536, 8); g.pwrite(d, base)
try:
    g.zero(65536, base, nbd.CMD_FLAG_FAST_ZERO)
    res = 'zeroed'
    if g.pread(65536, base) != bytes(65536): raise Fail('fast zero succeeded but data not zero')
except nbd.Error as e:
    if e.errnum not in (errno.ENOTSUP, errno.EOPNOTSUPP): raise Fail('error %s' % e)
    res = 'ENOTSUP'
    if g.pread(65536, base) != d: raise Fail('ENOTSUP but data modified')
done(g)
print('RESULT ' + res)`)
})

check("cache", "NBD_CMD_CACHE succeeds", async (ctx) => {
  need(ctx, "cache")
  needSize(ctx, 2 * MiB)
  await libnbd(ctx, `g = lib(); g.cache(MIB, 0); done(g)
print('RESULT')`)
})

check("structured_read", "structured READ: chunks tile the range exactly; DF gives one chunk; holes read as zeros", async (ctx) => {
  need(ctx, "sr", "structured replies")
  needSize(ctx, 16 * MiB)
  return libnbd(ctx, `g = lib(); base = 8 * MIB
d = pattern(MIB, 9); g.pwrite(d, base)
if ${py(ctx.features.zero)}: g.zero(MIB, base + MIB)
seen = []
def cb(buf, off, status, err):
    seen.append((off, len(buf), status)); return 0
buf = g.pread_structured(2 * MIB, base, cb)
if buf[:MIB] != d or buf[MIB:] != bytes(MIB): raise Fail('content mismatch')
seen.sort(); pos = base
for off, n, st in seen:
    if off != pos: raise Fail('chunks do not tile the range (gap/overlap at %d)' % off)
    pos += n
if pos != base + 2 * MIB: raise Fail('chunks cover %d bytes' % (pos - base))
kinds = sorted(set('hole' if s == nbd.READ_HOLE else 'data' for _, _, s in seen))
note = '%d chunks (%s)' % (len(seen), '+'.join(kinds))
if ${py(ctx.features.df)}:
    seen.clear(); g.pread_structured(65536, base + MIB - 32768, cb, nbd.CMD_FLAG_DF)
    if len(seen) != 1: raise Fail('DF read returned %d chunks' % len(seen))
    note += '; DF ok'
done(g)
print('RESULT ' + note)`)
})

check("block_status", "BLOCK_STATUS base:allocation: extents well-formed (with/without REQ_ONE), ZERO extents read as zeros", async (ctx) => {
  need(ctx, "bs", "base:allocation")
  needSize(ctx, 16 * MiB)
  return libnbd(ctx, `g = lib(); size = ${ctx.features.size}
base = 12 * MIB
g.pwrite(pattern(MIB, 10), base)
if ${py(ctx.features.zero)}: g.zero(2 * MIB, base + MIB)
def get(off, n, flags=0):
    ext = []
    def cb(c, o, entries, err):
        if c == nbd.CONTEXT_BASE_ALLOCATION: ext.append((o, list(entries)))
        return 0
    g.block_status(n, off, cb, flags)
    if len(ext) != 1: raise Fail('%d base:allocation chunks' % len(ext))
    e = ext[0][1]; pairs = list(zip(e[0::2], e[1::2]))
    if not pairs: raise Fail('no extents')
    tot = 0
    for i, (ln, fl) in enumerate(pairs):
        if ln == 0: raise Fail('zero-length extent')
        if i < len(pairs) - 1 and tot + ln >= n: raise Fail('extents continue past the requested length')
        tot += ln
    if off + tot > size: raise Fail('extents run past end of export')
    if flags & nbd.CMD_FLAG_REQ_ONE and (len(pairs) != 1 or pairs[0][0] > n):
        raise Fail('REQ_ONE violated: %r' % pairs[:3])
    return pairs
p = get(base, 4 * MIB)
get(base, 4 * MIB, nbd.CMD_FLAG_REQ_ONE)
get(0, min(size, 1 << 31))
pos = base; zero_reported = False
for ln, fl in p:
    lo, hi = pos, pos + ln
    if fl & nbd.STATE_ZERO:
        if lo < base + MIB and hi > base:
            raise Fail('freshly written data [%d,%d) reported as ZERO' % (max(lo, base), min(hi, base + MIB)))
        if lo < base + 3 * MIB and hi > base + MIB:
            zero_reported = True
        n = min(ln, MIB, max(0, base + 4 * MIB - pos))
        if n > 0 and g.pread(n, pos) != bytes(n): raise Fail('extent at %d flagged ZERO but has data' % pos)
    pos = hi
done(g)
note = '%d extents over the 4 MiB probe: %s' % (len(p), ' '.join('%dK:%d' % (l // 1024, f) for l, f in p[:6]))
if ${py(ctx.features.zero)} and not zero_reported:
    raise Fail(note + '; zeroed 2 MiB not reported as ZERO/HOLE (legal, but costs sparse copies)')
print('RESULT ' + note)`)
})

check("sparse_map", "nbdinfo --map on the (sparse) export: contiguous extents, ZERO extents really zero", async (ctx) => {
  need(ctx, "bs", "base:allocation")
  const name = ctx.sparse ?? ctx.name
  const map = await runTool("nbdinfo", ["--map", "--json", `nbd://127.0.0.1:${ctx.port}/${encodeURIComponent(name)}`], { timeoutMs: 120_000 })
  if (map.code !== 0) fail(`nbdinfo --map failed: ${map.stderr.trim().slice(-200)}`)
  const extents = JSON.parse(map.stdout) as Array<{ offset: number; length: number; type: number }>
  let pos = 0
  let holes = 0
  const zeros: Array<[number, number]> = []
  for (const e of extents) {
    if (e.offset !== pos) fail(`gap/overlap at ${pos}`)
    pos += e.length
    if (e.type & 1) holes++
    if (e.type & 2) zeros.push([e.offset, e.length])
  }
  const sample = JSON.stringify(zeros.slice(0, 16))
  const out = await libnbd(
    { port: ctx.port, name },
    `g = lib(); size = g.get_size()
if ${pos} != size: raise Fail('map covers %d of %d bytes' % (${pos}, size))
for off, ln in json.loads('${sample}'):
    n = min(ln, 256 * 1024)
    if g.pread(n, off) != bytes(n): raise Fail('ZERO extent at %d has data' % off)
done(g)
print('RESULT')`
  )
  void out
  const note = `${extents.length} extents, ${holes} holes (export ${JSON.stringify(name)})`
  if (ctx.sparse !== undefined && holes === 0) fail(`${note}: sparse export reported fully allocated`)
  return note
})

check("out_of_range", "beyond-end requests: READ/TRIM/CACHE/BLOCK_STATUS->EINVAL, WRITE/WRITE_ZEROES->ENOSPC, offset overflow rejected; connection survives", async (ctx) => {
  const f = ctx.features
  return libnbd(ctx, `g = lib(strict=False); size = ${f.size}
res = {}; fails = []; warns = []
def t(name, fn, want):
    try:
        fn(); res[name] = 'OK'; fails.append('%s succeeded' % name)
    except nbd.Error as e:
        res[name] = errno.errorcode.get(e.errnum, str(e.errnum))
        if e.errnum not in want: warns.append('%s->%s (want %s)' % (name, res[name], '/'.join(errno.errorcode[w] for w in want)))
t('read', lambda: g.pread(1024, size - 512), (errno.EINVAL,))
t('write', lambda: g.pwrite(b'x' * 1024, size - 512), (errno.ENOSPC,))
t('read_overflow', lambda: g.pread(1024, (1 << 64) - 512), (errno.EINVAL,))
t('write_far', lambda: g.pwrite(b'x' * 512, size + 4096), (errno.ENOSPC,))
if ${py(f.trim)}: t('trim', lambda: g.trim(1024, size - 512), (errno.EINVAL,))
if ${py(f.zero)}: t('write_zeroes', lambda: g.zero(1024, size - 512), (errno.ENOSPC,))
if ${py(f.cache)}: t('cache', lambda: g.cache(1024, size - 512), (errno.EINVAL,))
if ${py(f.bs)}: t('block_status', lambda: g.block_status(1024, size + 512, lambda *a: 0), (errno.EINVAL,))
g.pread(512, size - 512); done(g)
summary = ' '.join('%s=%s' % kv for kv in res.items())
if fails: raise Fail('; '.join(fails) + ' | ' + summary)
if warns: raise Fail('; '.join(warns))
print('RESULT ' + summary)`)
})

// ---- transmission, raw sockets ------------------------------------------------------------

check("write_error_drain", "rejected WRITE (beyond end, 64 KiB payload): payload drained, next request answered", async ({ port, name }) => {
  const r = await rawSession(port, name)
  const ck = r.req(C.WRITE, r.size + 4096, 65536, 0, Buffer.alloc(65536, 0x11))
  const ck2 = r.req(C.READ, 0, 512)
  let got
  try {
    got = await within(r.collect([ck, ck2]), 10_000, "replies")
  } catch (err) {
    r.close()
    await alive(port, name)
    return fail(`after the rejected WRITE: ${String(err)}`)
  }
  r.req(C.DISC, 0, 0)
  r.close()
  const w = got.get(ck)
  const rd = got.get(ck2)
  if (w?.error === 0) fail("WRITE beyond end succeeded")
  if (rd?.error !== 0 || rd.data.length !== 512) fail(`following READ failed (${rd?.error})`)
  return `WRITE error ${w?.error}`
})

check("bad_command", "unknown command type / unknown flag / misplaced flag: error reply (EINVAL), connection survives", async ({ port, name }) => {
  const r = await rawSession(port, name)
  const out: Array<[string, number]> = []
  for (const [label, type, flags] of [
    ["cmd 99", 99, 0],
    ["READ+flag 0x8000", C.READ, 0x8000],
    ["READ+NO_HOLE", C.READ, F.NO_HOLE]
  ] as const) {
    const ck = r.req(type, 0, type === C.READ ? 512 : 0, flags)
    try {
      out.push([label, (await within(r.reply(ck), 10_000, label)).error])
    } catch (err) {
      r.close()
      await alive(port, name)
      fail(`${label} killed the connection (${String(err)})`)
    }
  }
  const { error } = await r.reply(r.req(C.READ, 0, 512))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail("READ afterwards failed")
  const s = out.map(([l, e]) => `${l}->${e === 0 ? "OK" : e}`).join(", ")
  if (out[0]?.[1] === 0) fail(`unknown command succeeded: ${s}`)
  if (out.some(([, e]) => e !== EINVAL)) fail(s)
  return s
})

check("zero_length", "zero-length READ/WRITE/TRIM: any reply, no disconnect (SHOULD)", async ({ port, name }) => {
  const r = await rawSession(port, name)
  let e1, e2, e3, e4
  try {
    e1 = (await within(r.reply(r.req(C.READ, 0, 0)), 10_000, "READ 0")).error
    e2 = (await within(r.reply(r.req(C.WRITE, 0, 0)), 10_000, "WRITE 0")).error
    if (r.flags & TF.TRIM) e3 = (await within(r.reply(r.req(C.TRIM, 0, 0)), 10_000, "TRIM 0")).error
    e4 = (await within(r.reply(r.req(C.READ, 0, 512)), 10_000, "READ")).error
  } catch (err) {
    r.close()
    await alive(port, name)
    fail(`server disconnected on zero-length request (${String(err)})`)
  }
  r.req(C.DISC, 0, 0)
  r.close()
  if (e4 !== 0) fail(`READ afterwards failed (${e4})`)
  return `read=${e1} write=${e2} trim=${e3}`
})

check("pipelining", "128 requests in flight on one connection (64 aio writes, then 64 aio reads), all complete correctly", async (ctx) => {
  needSize(ctx, 24 * MiB)
  await libnbd(ctx, `g = lib(); base = 20 * MIB
data = pattern(4 * MIB, 11)
deadline = time.time() + 30
def drain(pending):
    while pending:
        g.poll(1000)
        pending = [c for c in pending if not g.aio_command_completed(c)]
        if time.time() > deadline: raise Fail('%d requests never completed' % len(pending))
wb = [nbd.Buffer.from_bytearray(bytearray(data[i * 65536:(i + 1) * 65536])) for i in range(64)]
drain([g.aio_pwrite(wb[i], base + i * 65536) for i in range(64)])
bufs = [nbd.Buffer(65536) for _ in range(64)]
order = [((i * 7) % 64) for i in range(64)]
drain([g.aio_pread(bufs[i], base + order[i] * 65536) for i in range(64)])
for i, b in enumerate(bufs):
    off = order[i] * 65536
    if bytes(b.to_bytearray()) != data[off:off + 65536]: raise Fail('read %d mismatch' % i)
done(g)
print('RESULT')`)
})

check("multi_conn", "4 connections write in parallel, FLUSH each, every connection reads every write", async (ctx) => {
  need(ctx, "multi", "CAN_MULTI_CONN")
  need(ctx, "flush")
  needSize(ctx, 16 * MiB)
  await libnbd(ctx, `hs = [lib() for _ in range(4)]
base = 8 * MIB
errors = []
def writer(i):
    try:
        d = pattern(256 * 1024, 100 + i)
        for k in range(4):
            hs[i].pwrite(d[k * 65536:(k + 1) * 65536], base + i * MIB + k * 65536)
        hs[i].flush()
    except Exception as e:
        errors.append(e)
ths = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
for t in ths: t.start()
for t in ths: t.join(30)
if errors: raise Fail('writer failed: %s' % errors[0])
for j in range(4):
    for i in range(4):
        if hs[j].pread(256 * 1024, base + i * MIB) != pattern(256 * 1024, 100 + i):
            raise Fail("connection %d does not see connection %d's flushed writes" % (j, i))
if ${py(ctx.features.fua)}:
    d = pattern(4096, 555); hs[0].pwrite(d, base + 5 * MIB, nbd.CMD_FLAG_FUA)
    if hs[3].pread(4096, base + 5 * MIB) != d: raise Fail('FUA write not visible on another connection')
for x in hs: done(x)
print('RESULT')`)
})

// Deterministic pseudo-random bytes (sha256 counter, as the libnbd snippets' pattern()).
const pattern = (n: number, seed: number): Buffer => {
  const parts: Array<Buffer> = []
  let have = 0
  for (let i = 0; have < n; i++) {
    const d = createHash("sha256").update(`${seed}:${i}`).digest()
    parts.push(d)
    have += d.length
  }
  return Buffer.concat(parts).subarray(0, n)
}

const readBack = async (port: number, name: string, offset: number, length: number) => {
  const r = await rawSession(port, name)
  const { error, data } = await r.reply(r.req(C.READ, offset, length))
  r.req(C.DISC, 0, 0)
  r.close()
  if (error !== 0) fail(`read back failed (${error})`)
  return data
}

check("disconnect", "NBD_CMD_DISC after all replies: server closes without reply, data kept, next client served", async (ctx) => {
  needSize(ctx, 20 * MiB)
  const r = await rawSession(ctx.port, ctx.name)
  const base = 16 * MiB
  const d = pattern(8 * 65536, 12)
  const cks = Array.from({ length: 8 }, (_, i) => r.req(C.WRITE, base + i * 65536, 65536, 0, d.subarray(i * 65536, (i + 1) * 65536)))
  const got = await within(r.collect(cks), 10_000, "write replies")
  if ([...got.values()].some((x) => x.error !== 0)) fail("a WRITE failed")
  r.req(C.DISC, 0, 0)
  if (!(await closedWithin(r.c, 10_000))) {
    r.close()
    fail("server did not close within 10 s after NBD_CMD_DISC")
  }
  const extra = r.c.buffered()
  r.close()
  if (extra > 0) fail(`server sent ${extra} bytes in response to NBD_CMD_DISC`)
  if (!(await readBack(ctx.port, ctx.name, base, d.length)).equals(d)) fail("data lost")
})

check("disconnect_eager", "NBD_CMD_DISC sent right behind 8 pipelined WRITEs: each write performed or error-replied, none silently lost", async (ctx) => {
  needSize(ctx, 20 * MiB)
  const base = 17 * MiB
  {
    const z = await rawSession(ctx.port, ctx.name)
    await z.reply(z.req(C.WRITE, base, 8 * 65536, 0, Buffer.alloc(8 * 65536)))
    z.req(C.DISC, 0, 0)
    z.close()
  }
  const r = await rawSession(ctx.port, ctx.name)
  const d = pattern(8 * 65536, 14)
  const cks = Array.from({ length: 8 }, (_, i) => r.req(C.WRITE, base + i * 65536, 65536, 0, d.subarray(i * 65536, (i + 1) * 65536)))
  r.req(C.DISC, 0, 0)
  const replies = new Map<bigint, number>()
  const reading = (async () => {
    try {
      for (;;) {
        const m = await r.msg()
        if (m.kind === "simple") replies.set(m.cookie, m.error)
        else if (m.flags & 1) replies.set(m.cookie, 0)
      }
    } catch {
      // The server closed: every reply it meant to send has been read.
    }
  })()
  if (!(await closedWithin(r.c, 10_000))) {
    r.close()
    fail("server did not close within 10 s after NBD_CMD_DISC")
  }
  await reading
  r.close()
  const got = await readBack(ctx.port, ctx.name, base, d.length)
  let performed = 0
  let rejected = 0
  let lost = 0
  cks.forEach((ck, i) => {
    if (got.subarray(i * 65536, (i + 1) * 65536).equals(d.subarray(i * 65536, (i + 1) * 65536))) performed++
    else if ((replies.get(ck) ?? 0) !== 0) rejected++
    else lost++
  })
  const note = `${performed} performed, ${rejected} error-replied, ${lost} lost; ${replies.size} replies seen`
  if (lost > 0) fail(note)
  if (rejected > 0) fail(`${note} (spec: server MUST handle outstanding requests)`)
  return note
})

check("qemu_io", "qemu NBD client (qemu-io): write/read -P, write -z, discard, flush, map", async (ctx) => {
  needSize(ctx, 28 * MiB)
  const cmds = ["write -P 0x5a 24M 1M", "read -P 0x5a 24M 1M", "write -z 24M 256k", "read -P 0 24M 256k", "read -P 0x5a 25088k 256k", "flush", "map"]
  if (ctx.features.trim) cmds.splice(5, 0, "discard 26M 64k")
  const r = await runTool("qemu-io", ["-f", "raw", ...cmds.flatMap((c) => ["-c", c]), `nbd://127.0.0.1:${ctx.port}/${encodeURIComponent(ctx.name)}`], {
    timeoutMs: 60_000
  })
  const out = r.stdout + r.stderr
  if (r.code !== 0 || /failed|error/i.test(out)) {
    fail(`rc=${r.code}: ${out.split("\n").filter((l) => /ail|rror/.test(l)).join(" | ").slice(0, 300)}`)
  }
})

check("nbdcopy", "nbdcopy 4 MiB local file -> export, verified with libnbd", async (ctx) => {
  needSize(ctx, 8 * MiB)
  const src = path.join(ctx.dir, "src.bin")
  fs.writeFileSync(src, pattern(4 * MiB, 13))
  const r = await runTool("nbdcopy", ["--connections=1", src, `nbd://127.0.0.1:${ctx.port}/${encodeURIComponent(ctx.name)}`], { timeoutMs: 60_000 })
  if (r.code !== 0) fail(`nbdcopy failed: ${r.stderr.trim().slice(-200)}`)
  await libnbd(ctx, `g = lib(); got = g.pread(4 * MIB, 0); done(g)
if got != open(${JSON.stringify(src)}, 'rb').read(): raise Fail('data mismatch after nbdcopy')
print('RESULT')`)
})

// ---- hostile clients --------------------------------------------------------------------

check("malformed_handshake", "garbage/truncated/oversized/bad-magic handshakes, a stalled client, 30 rapid connects: server keeps serving", async ({ port, name }) => {
  const variants: Array<string> = []
  const opt = (option: number, length: number) => {
    const h = Buffer.alloc(16)
    h.writeBigUInt64BE(IHAVEOPT)
    h.writeUInt32BE(option, 8)
    h.writeUInt32BE(length, 12)
    return h
  }
  const v = async (label: string, fn: (r: Awaited<ReturnType<typeof rawClient>>) => Promise<unknown>) => {
    try {
      const r = await rawClient(port)
      await within(fn(r), 5000, label)
      r.close()
      variants.push(label)
    } catch (err) {
      variants.push(`${label}(${err instanceof Error ? err.constructor.name : "error"})`)
    }
  }
  await v("close-immediately", async () => undefined)
  await v("garbage-flags", async (r) => {
    await r.c.read(18)
    r.c.write(randomBytes(64))
  })
  await v("truncated-option", async (r) => {
    await r.greet()
    r.c.write(opt(O.GO, 0).subarray(0, 10))
  })
  await v("huge-option-len", async (r) => {
    await r.greet()
    r.c.write(Buffer.concat([opt(O.GO, 0xffffffff), Buffer.alloc(100)]))
  })
  await v("bad-option-magic", async (r) => {
    await r.greet()
    const h = opt(O.GO, 0)
    h.writeBigUInt64BE(0x1122334455667788n)
    r.c.write(h)
    await closedWithin(r.c, 3000)
  })
  // A stalled client must not block others.
  const stall = await rawClient(port)
  await alive(port, name)
  stall.close()
  for (let i = 0; i < 30; i++) {
    const c = await rawClient(port).catch(() => undefined)
    c?.close()
  }
  variants.push("stalled-client+30-rapid-connects")
  await alive(port, name)
  return variants.join(", ")
})

check("malformed_transmission", "bad request magic / huge WRITE length / truncated request: only that client is dropped", async ({ port, name }) => {
  const out: Array<string> = []
  let r = await rawSession(port, name)
  r.c.write(randomBytes(28))
  const closed = await closedWithin(r.c, 5000)
  out.push(`bad-magic:${closed ? "closed" : "still-open"}`)
  r.close()
  if (!closed) fail("bad request magic: the server kept the connection (framing is lost, it must close)")
  await alive(port, name)
  r = await rawSession(port, name)
  const huge = Buffer.alloc(28 + 10)
  huge.writeUInt32BE(0x25609513, 0)
  huge.writeUInt16BE(C.WRITE, 6)
  huge.writeBigUInt64BE(1n, 8)
  huge.writeUInt32BE(0xfffffff0, 24)
  r.c.write(huge)
  r.close()
  await alive(port, name)
  out.push("huge-write-then-close")
  r = await rawSession(port, name)
  r.c.write(huge.subarray(0, 8))
  r.close()
  await alive(port, name)
  out.push("truncated-header")
  r = await rawSession(port, name)
  r.req(C.READ, 0, Math.min(32 * MiB, r.size))
  r.close()
  await alive(port, name)
  out.push("close-during-32MiB-read")
  return out.join(", ")
})

export const CHECKS: ReadonlyArray<Check> = checks
