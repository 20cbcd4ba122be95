import { Effect } from "effect"
import { accountStage, closeSessionStage, EXIT, handles, lookupAccount, openSessionStage, type PamContext } from "./stages.js"

// One PAM stage from pam_exec's variables to an exit status: the same for prolo-pam run in
// process (bin/prolo-pam.ts) and for the resident login helper (helper.ts), which differ only
// in where the greeter lines go.

export const PAM_STAGES = ["account", "open_session", "close_session"] as const

/** What pam_exec tells its program (PAM_TYPE, PAM_USER, PAM_SERVICE, PAM_RHOST). */
export interface PamRequest {
  readonly stage: string
  readonly user: string
  readonly service: string
  readonly rhost: string
}

/** Everything a stage needs but the greeter's line sink. */
export type PamBase = Omit<PamContext, "say">

/** Runs the stage `request` names; every failure is one greeter line and its exit status. */
export const runPamStage = (base: PamBase, request: PamRequest, say: PamContext["say"]): Effect.Effect<number> =>
  Effect.gen(function* () {
    if (!(PAM_STAGES as ReadonlyArray<string>).includes(request.stage)) return EXIT.ok
    const account = yield* lookupAccount(request.user)
    if (!handles(request.service, account)) return EXIT.ok
    const ctx: PamContext = { ...base, say }
    const run = request.stage === "account" ? accountStage : request.stage === "open_session" ? openSessionStage : closeSessionStage
    yield* run(ctx, account)
    return EXIT.ok
  }).pipe(
    Effect.catchTag("PamFailure", (e) => Effect.as(say(e.message), e.code)),
    Effect.catchAllDefect((d) => Effect.as(say(`Login impossible: prolo-pam failed: ${d instanceof Error ? d.message : String(d)}`), EXIT.systemError))
  )
