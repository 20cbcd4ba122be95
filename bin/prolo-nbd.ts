// `prolo nbd …` alone: bin/prolo.js starts this entry instead of the whole CLI when the
// first argument is `nbd`, so that the NBD server loads only what it runs (Effect's core,
// @effect/cli and src/nbd), not the RPC clients, YAML, metrics and SQL code the other
// subcommands bring: measured idle RSS of `prolo nbd serve`, 78 MiB through bin/prolo.ts,
// see src/nbd/README.md for this entry's figure. Same program name, same options, same exit
// statuses as bin/prolo.ts (failure: one line on stderr, status 2).
import * as v8 from "node:v8"
import * as Command from "@effect/cli/Command"
import { nbdCommand } from "../src/nbd/cli.js"
import { runCliMain } from "../src/runtime/cli-exit.js"

const PROGRAM = "prolo"

// V8 doubles its young generation (1 → 16 MiB per semi-space) whenever objects survive a
// scavenge, which requests in flight always do: that alone was most of the server's growth
// under load (idle 66, peak 92 MiB with a 16 MiB buffer budget). The NBD data path
// allocates little per request, so scavenging a 1 MiB space more often costs little (see
// bench:nbd). This process runs only the NBD server, so the setting is its own. The growth
// factor is read at every resize (unlike --max-semi-space-size, fixed at start-up).
v8.setFlagsFromString("--semi-space-growth-factor=1")

const command = Command.make(PROGRAM).pipe(
  Command.withDescription("operator CLI of prolo: the NBD server (other subcommands: prolo --help)"),
  Command.withSubcommands([nbdCommand])
)

runCliMain(PROGRAM, Command.run(command, { name: PROGRAM, version: "0.1.0" })(process.argv))
