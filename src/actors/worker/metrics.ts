import { Effect, Metric } from "effect"
import type { CompileResult, MatchResult, SandboxKill } from "../../protocols/cluster-task.js"

// Sandbox kills by reason and program (the "sandbox kills by reason"); an Effect
// metric, so the executor needs no registry and /metrics shows it next to the node's others.
// The original's workernode_* timings belong to the worker's connection (it times the slots).

const kills = Metric.counter("workernode_sandbox_kills", { description: "Programs ended by the sandbox, by reason and program (compile, server, client)", incremental: true })

const count = (program: "compile" | "server" | "client", reason: SandboxKill | undefined) =>
  reason === undefined ? Effect.void : Metric.increment(Metric.tagged(Metric.tagged(kills, "reason", reason), "program", program))

export const countCompileKills = (r: CompileResult) => count("compile", r.kill)

export const countMatchKills = (r: MatchResult) =>
  Effect.zipRight(count("server", r.kill), Effect.forEach(r.players, (p) => count("client", p.kill), { discard: true }))
