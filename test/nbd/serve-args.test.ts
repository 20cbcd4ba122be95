import { describe, expect, it } from "vitest"
import { parseExportArg, parseListen, parseMemoryBudget, parseSize } from "../../src/nbd/serve-args.js"

describe("prolo nbd serve arguments", () => {
  it("parses exports", () => {
    expect(parseExportArg("alice=/srv/alice.img")).toEqual({ name: "alice", source: { _tag: "File", path: "/srv/alice.img" }, readOnly: false })
    expect(parseExportArg("skel=/srv/skel.img,ro")).toEqual({ name: "skel", source: { _tag: "File", path: "/srv/skel.img" }, readOnly: true })
    expect(parseExportArg("a=b=c,rw")).toEqual({ name: "a", source: { _tag: "File", path: "b=c" }, readOnly: false })
    expect(parseExportArg("scratch=mem:256M")).toEqual({ name: "scratch", source: { _tag: "Memory", size: 256 * 2 ** 20 }, readOnly: false })
    expect(parseExportArg("s=mem:4096,ro")).toEqual({ name: "s", source: { _tag: "Memory", size: 4096 }, readOnly: true })
  })

  it("refuses bad exports with a specific message", () => {
    expect(parseExportArg("alice")).toMatch(/expected NAME=FILE/)
    expect(parseExportArg("=/x")).toEqual({ name: "", source: { _tag: "File", path: "/x" }, readOnly: false })
    expect(parseExportArg("a=")).toMatch(/no file given/)
    expect(parseExportArg("=")).toMatch(/no file given/)
    expect(parseExportArg("a=,ro")).toMatch(/no file given/)
    expect(parseExportArg("a=mem:12Q")).toMatch(/bad size "12Q"/)
    expect(parseExportArg("a=mem:0")).toMatch(/out of range/)
  })

  it("parses --memory-budget and refuses what is too small or no size", () => {
    expect(parseMemoryBudget("16M")).toBe(16 * 2 ** 20)
    expect(parseMemoryBudget("1M")).toBe(2 ** 20)
    expect(parseMemoryBudget("512K")).toMatch(/bad --memory-budget "512K": at least 1M/)
    expect(parseMemoryBudget("lots")).toMatch(/bad --memory-budget: bad size "lots"/)
    expect(parseMemoryBudget("0")).toMatch(/bad --memory-budget: size "0" is out of range/)
  })

  it("parses sizes and listen addresses", () => {
    expect(parseSize("2G")).toBe(2 ** 31)
    expect(parseSize("1k")).toBe(1024)
    expect(parseSize("-1")).toMatch(/bad size/)
    expect(parseSize("99999999999T")).toMatch(/out of range/)
    expect(parseListen("127.0.0.1:10809")).toEqual({ host: "127.0.0.1", port: 10809 })
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 })
    expect(parseListen(":10809")).toEqual({ host: "127.0.0.1", port: 10809 })
    expect(parseListen("hfs0:40000")).toEqual({ host: "hfs0", port: 40000 })
    expect(parseListen("127.0.0.1")).toMatch(/expected HOST:PORT/)
    expect(parseListen("127.0.0.1:99999")).toMatch(/out of range/)
    expect(parseListen("a:b:1")).toMatch(/expected HOST:PORT/)
  })
})
