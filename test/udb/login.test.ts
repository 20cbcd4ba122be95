import { describe, expect, it } from "@effect/vitest"
import { baseLogin, firstFreeLogin, titleCase, toAscii } from "../../src/actors/udb/login.js"
import { DIGITS, generatePassword, PASSWORD_ALPHABET, UPPER } from "../../src/actors/udb/password.js"

describe("login generation", () => {
  it.each([
    ["Jean-Pierre", "De La Fontaine", "jpdelafontai"],
    ["Marie Anne", "Dupont", "madupont"],
    ["Jean-Pierre", "De La Fontaine-Étienne", "jpdelafontai"],
    ["Élodie", "Müller", "emuller"],
    ["Zoë", "O'Brien", "zobrien"],
    ["anne", "Verylonglastnamehere", "averylongla"]
  ])("%s %s → %s", (first, last, login) => {
    expect(baseLogin(first, last)).toBe(login)
  })

  it("transliterates with NFKD and drops what has no ASCII form", () => {
    expect(toAscii("Ça déçoit Łukasz")).toBe("Ca decoit ukasz")
  })

  it("suffixes 1, 2, … until free and never gives root", () => {
    const taken = new Set(["jdoe", "jdoe1"])
    expect(firstFreeLogin("jdoe", (l) => !taken.has(l))).toBe("jdoe2")
    expect(firstFreeLogin("root", () => true)).toBe("root1")
    // A suffix that would exceed 31 characters has no free login.
    expect(firstFreeLogin("a".repeat(31), () => false)).toBeUndefined()
  })

  it("title-cases like Python's str.title()", () => {
    expect(titleCase("jean-pierre DE LA fontaine")).toBe("Jean-Pierre De La Fontaine")
    expect(titleCase("élodie o'brien")).toBe("Élodie O'Brien")
    expect(titleCase("john_doe2x")).toBe("John_Doe2X")
  })
})

describe("password generation", () => {
  it("gives the asked length, a capital and a digit, never an ambiguous character", () => {
    for (let i = 0; i < 300; i++) {
      const p = generatePassword(8)
      expect(p).toHaveLength(8)
      expect([...p].every((c) => PASSWORD_ALPHABET.includes(c))).toBe(true)
      expect([...p].some((c) => UPPER.includes(c))).toBe(true)
      expect([...p].some((c) => DIGITS.includes(c))).toBe(true)
      expect(p).not.toMatch(/[B8G6I1l0OQDS5Z2]/)
    }
    expect(generatePassword(2)).toHaveLength(2)
  })
})
