import { defineConfig } from "vitest/config"

// Bounds sized for CI: a noisy 2-core machine where vitest runs one test file at a time. They
// are last resorts: a test waits for an observable fact (a line logged, a probe answered, a
// frame received) and its own waits fail first, naming what never came. Suite: ~3 min, < 15.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // A test still running after this fails with "Test timed out", and @effect/vitest interrupts
    // its fiber so that its scope's finalizers stop what it started. Tests that start whole
    // nodes or many processes pass their own, larger bound.
    testTimeout: 60_000,
    // `layer(PgTest)` builds a migrated database in beforeAll; the embedded cluster is shared.
    hookTimeout: 120_000,
    // Closing waits this long for workers and the global teardown (stopping the test
    // PostgreSQL takes seconds under load), then vitest exits anyway: CI never hangs here.
    teardownTimeout: 30_000,
    globalSetup: ["test/global-build.ts", "test/global-setup.ts"]
  }
})
