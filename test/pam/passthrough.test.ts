import { execFile } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { checkout } from "../e2e/node-process.js"

// bin/prolo-pam.js as pam_exec runs it (only PAM variables in its environment): stages it does
// not handle, users outside the contest uid range and unknown users pass untouched (exit 0,
// nothing said); the contest users' path is the site suite (test/e2e/site/login.test.ts).

const pam = (env: Record<string, string>) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(path.join(checkout, "bin/prolo-pam.js"), [], { env, timeout: 30_000 }, (error, stdout) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout })
    )
  })

describe("prolo-pam: who passes through", () => {
  it("root, an unknown user, another stage: exit 0, nothing on the greeter", async () => {
    for (const env of [
      { PAM_TYPE: "account", PAM_USER: "root", PAM_SERVICE: "login" },
      { PAM_TYPE: "open_session", PAM_USER: "no-such-user-here", PAM_SERVICE: "login" },
      { PAM_TYPE: "auth", PAM_USER: "root", PAM_SERVICE: "login" },
      { PAM_TYPE: "close_session", PAM_USER: "root", PAM_SERVICE: "systemd-user" }
    ]) {
      expect(await pam(env)).toEqual({ code: 0, stdout: "" })
    }
  })
})
