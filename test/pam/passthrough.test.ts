import { execFile } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { checkout } from "../e2e/node-process.js"

// bin/prolo-pam (no login helper listens here: it runs the stage in process) and
// bin/prolo-pam.js as pam_exec runs them (only PAM variables in their environment): stages
// prolo-pam does not handle, users outside the contest uid range and unknown users pass
// untouched (exit 0, nothing said); the contest users' path is the site suite
// (test/e2e/site/login.test.ts), the helper's test/pam/helper.test.ts.

const pam = (program: string, env: Record<string, string>) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(path.join(checkout, program), ["--socket", "/nonexistent/helper.sock"].slice(program.endsWith(".js") ? 2 : 0), { env, timeout: 30_000 }, (error, stdout) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout })
    )
  })

describe("prolo-pam: who passes through", () => {
  it.each(["bin/prolo-pam", "bin/prolo-pam.js"])("%s: root, an unknown user, another stage: exit 0, nothing on the greeter", async (program) => {
    for (const env of [
      { PAM_TYPE: "account", PAM_USER: "root", PAM_SERVICE: "login" },
      { PAM_TYPE: "open_session", PAM_USER: "no-such-user-here", PAM_SERVICE: "login" },
      { PAM_TYPE: "auth", PAM_USER: "root", PAM_SERVICE: "login" },
      { PAM_TYPE: "close_session", PAM_USER: "root", PAM_SERVICE: "systemd-user" }
    ]) {
      expect(await pam(program, env)).toEqual({ code: 0, stdout: "" })
    }
  })
})
