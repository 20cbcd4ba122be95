import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect } from "effect"
import type { ClusterStatus } from "../../../protocols/cluster.js"
import { localClusterStatus } from "../../cluster/local-master.js"
import { page } from "../guard.js"
import { htmlResponse, Layout } from "../html.js"
import { webRouter } from "../web-router.js"

// `/status/` (any logged-in user, as the original): each worker's usage from the master's
// status, and the queue. Organisers also see the running tasks. Read in process: role web runs
// the master (src/actors/cluster/local-master.ts). Without it, the original's "masternode
// inaccessible" as a 503 naming the reason.

const percent = (busy: number, slots: number) => (slots === 0 ? 0 : Math.round((100 * busy) / slots))

const StatusBody = (props: { status: ClusterStatus; staff: boolean }) => {
  const { workers, queue, running } = props.status
  const slots = workers.reduce((n, w) => n + w.slots, 0)
  const busy = workers.reduce((n, w) => n + w.slots - w.free, 0)
  return (
    <>
      <p id="cluster-summary">
        {workers.length} worker(s), {busy}/{slots} slots busy ({percent(busy, slots)} %). Queue: {queue.compile} compilation(s), {queue.match} match(es).
      </p>
      <table id="workers">
        <thead>
          <tr><th>worker</th><th>usage</th><th>slots</th><th>tasks</th><th>last heard</th></tr>
        </thead>
        <tbody>
          {workers.map((w) => (
            <tr data-worker={w.worker}>
              <td>{w.worker}</td>
              <td>
                <meter min={0} max={100} value={percent(w.slots - w.free, w.slots)} /> {percent(w.slots - w.free, w.slots)} %
              </td>
              <td>{w.slots - w.free}/{w.slots}</td>
              <td>{w.tasks}</td>
              <td>{(w.heardAgoMillis / 1000).toFixed(1)} s ago</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.staff ? (
        <>
          <h2>Running</h2>
          <table id="running">
            <thead>
              <tr><th>task</th><th>attempt</th><th>worker</th><th>lease ends in</th></tr>
            </thead>
            <tbody>
              {running.map((r) => (
                <tr>
                  <td>
                    {r.kind === "compile" ? <a href={`/champions/${r.id}/`}>champion {r.id}</a> : <a href={`/matches/${r.id}/`}>match {r.id}</a>}
                  </td>
                  <td>{r.attempt}</td>
                  <td>{r.worker}</td>
                  <td>{Math.round(r.expiresInMillis / 1000)} s</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p>
            {props.status.redispatches} redispatch(es), worst delay {(props.status.worstRedispatchMillis / 1000).toFixed(1)} s.
          </p>
        </>
      ) : null}
    </>
  )
}

export const statusRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const web = yield* webRouter(router)
    yield* web.get("/status/", () =>
      page("user", (viewer) =>
        localClusterStatus.pipe(
          Effect.map((status) =>
            htmlResponse(
              <Layout viewer={viewer} title="Cluster status">
                <StatusBody status={status} staff={viewer.staff} />
              </Layout>
            )
          ),
          Effect.catchAll((e) =>
            Effect.succeed(
              htmlResponse(
                <Layout viewer={viewer} title="Cluster status">
                  <p class="error" id="cluster-unavailable">master node inaccessible: {e.message}</p>
                </Layout>,
                503
              )
            )
          )
        )
      )
    )
  })
)
