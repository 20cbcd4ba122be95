import { buildDist } from "../scripts/build.mjs"

// Tests that spawn bin/prolo-node.js or bin/prolo.js must run the current sources at bundle
// speed (under tsx a node can take longer to start than the NBD scripts wait on a loaded
// box): rebuild dist/ once, before any test process starts.
export default async function setup(): Promise<void> {
  await buildDist()
}
