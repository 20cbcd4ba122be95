import { ensureBundle } from "./support/bundle.js"

// Tests that spawn bin/prolo-node.js or bin/prolo.js must run the current sources at bundle
// speed (under tsx a node can take longer to start than the NBD scripts wait on a loaded
// box): bring dist/ up to date once, before any test process starts.
export default async function setup(): Promise<void> {
  await ensureBundle()
}
