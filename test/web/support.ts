import { Effect } from "effect"
import { createTestDatabase } from "../support/pg.js"
import { startWebNodeOn, type WebNode } from "./node.js"

// The website's test helpers (test/web/node.ts) and a node over a fresh test database.

export * from "./node.js"

export const startWebNode = async (webExtra = "", clusterExtra = ""): Promise<WebNode> =>
  startWebNodeOn(await Effect.runPromise(createTestDatabase), webExtra, clusterExtra)
