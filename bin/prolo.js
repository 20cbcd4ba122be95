#!/usr/bin/env node
import { launch } from "./launch.js"
// `prolo nbd …` runs from its own entry, which loads only the NBD server (bin/prolo-nbd.ts).
await launch(process.argv[2] === "nbd" ? "prolo-nbd" : "prolo")
