#!/usr/bin/env node
// Run by pam_exec at every account and session stage of every login: the two answers that need
// no work are given here, before the bundle loads (~0.5 s on a busy machine): a stage prolo-pam
// does not handle, and open_session of a home the account stage already mounted (its session
// file, src/protocols/pam-session.ts, at the default state_dir). Everything else: dist/prolo-pam.mjs.
import { readFileSync } from "node:fs"
import { launch } from "./launch.js"

const quick = () => {
  const stage = process.env.PAM_TYPE ?? ""
  if (!["account", "open_session", "close_session"].includes(stage)) return true
  const user = process.env.PAM_USER ?? ""
  if (stage !== "open_session" || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user)) return false
  try {
    const session = JSON.parse(readFileSync(`/run/prolo-pam/${user}`, "utf8"))
    if (session.login !== user || typeof session.mountpoint !== "string" || session.attachment === null) return false
    const mounted = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === session.mountpoint)
    return mounted
  } catch {
    return false
  }
}

if (quick()) process.exit(0)
await launch("prolo-pam")
