#!/usr/bin/env node
// Runs the TypeScript sources straight from a checkout: no build step after `npm ci`.
import { register } from "tsx/esm/api"
register()
await import("./prolo.ts")
