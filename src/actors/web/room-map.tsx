import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Stream } from "effect"
import { renderToString } from "preact-render-to-string"
import { type MachineRecord, ROOMS } from "../../protocols/mdb.js"
import type { Group } from "../../protocols/udb.js"
import { HttpDraining } from "../../runtime/http-host.js"
import { WebDirectory } from "./directory.js"
import { page } from "./guard.js"
import { htmlResponse, Layout } from "./html.js"
import { webRouter } from "./web-router.js"

// The live room map: every machine of MDB as a cell of its room, coloured by what the
// followed topics say now (faulty, who is logged on it and their group, free), redrawn in the
// browser from server-sent events without a reload. The server renders the SVG (escaped by
// preact) and sends the whole of it on each change: ~150 cells, a few tens of KB, to a few
// organisers' browsers; the page's script only swaps it in.

export type CellState = "faulty" | "contestant" | "staff" | "free"

export interface Cell {
  readonly hostname: string
  readonly room: string
  readonly mtype: string
  readonly state: CellState
  readonly login: string | undefined
}

export const cellsOf = (
  machines: ReadonlyArray<MachineRecord>,
  presence: ReadonlyMap<string, string>,
  groupOf: (login: string) => Group | undefined
): ReadonlyArray<Cell> =>
  machines
    .map((m): Cell => {
      const login = presence.get(m.hostname)
      const group = login === undefined ? undefined : groupOf(login)
      const state: CellState = m.is_faulty ? "faulty" : login === undefined ? "free" : group === "orga" || group === "root" ? "staff" : "contestant"
      return { hostname: m.hostname, room: m.room, mtype: m.mtype, state, login }
    })
    .sort((a, b) => a.hostname.localeCompare(b.hostname))

const FILL: Record<CellState, string> = { faulty: "#e66", contestant: "#6c6", staff: "#69e", free: "#eee" }
const COLUMNS = 10
const W = 96
const H = 44
const ROOM_GAP = 30

export const RoomMap = (props: { cells: ReadonlyArray<Cell> }) => {
  const rooms = ROOMS.map((room) => ({ room, cells: props.cells.filter((c) => c.room === room) })).filter((r) => r.cells.length > 0)
  let y = 0
  const groups = rooms.map(({ room, cells }) => {
    const top = y
    const rows = Math.ceil(cells.length / COLUMNS)
    y += ROOM_GAP + rows * H + 10
    return (
      <g class="room" data-room={room} transform={`translate(0 ${top})`}>
        <text x={2} y={20} font-size="16" font-weight="bold">{room}</text>
        {cells.map((c, i) => (
          <g id={`cell-${c.hostname}`} class="cell" data-state={c.state} data-login={c.login ?? ""} data-mtype={c.mtype}
            transform={`translate(${(i % COLUMNS) * W} ${ROOM_GAP + Math.floor(i / COLUMNS) * H})`}>
            <title>{`${c.hostname} (${c.mtype}): ${c.state}${c.login === undefined ? "" : `, ${c.login}`}`}</title>
            <rect width={W - 4} height={H - 4} rx={4} fill={FILL[c.state]} stroke={c.mtype === "user" ? "#555" : "#a60"} stroke-dasharray={c.mtype === "user" ? undefined : "4 2"} />
            <text x={4} y={16} font-size="12">{c.hostname}</text>
            <text x={4} y={32} font-size="11">{c.login ?? ""}</text>
          </g>
        ))}
      </g>
    )
  })
  return (
    <svg xmlns="http://www.w3.org/2000/svg" id="room-map" width={COLUMNS * W} height={Math.max(y, 40)} font-family="sans-serif">
      {groups}
    </svg>
  )
}

const LEGEND: ReadonlyArray<readonly [CellState, string]> = [
  ["free", "free"],
  ["contestant", "contestant logged in"],
  ["staff", "organiser logged in"],
  ["faulty", "faulty"]
]

// Replaces the map with each event's; reconnects by itself (EventSource does) after a drop.
const CLIENT = `
const box = document.getElementById("map-box")
const status = document.getElementById("map-status")
const events = new EventSource("/admin/map/events")
events.addEventListener("map", (e) => { box.innerHTML = e.data; status.textContent = "live" })
events.onerror = () => { status.textContent = "reconnecting…" }
`

export const roomMapRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const web = yield* webRouter(router)
    const draining = yield* HttpDraining
    const snapshot = Effect.map(WebDirectory, (d) => renderToString(<RoomMap cells={cellsOf(d.machines(), d.presence(), d.userGroup)} />))
    yield* web.get("/admin/map", () =>
      page("staff", (viewer) =>
        Effect.map(snapshot, (svg) =>
          htmlResponse(
            <Layout viewer={viewer} title="Room map">
              <p class="noprint">
                {LEGEND.map(([state, label]) => (
                  <span style={`background:${FILL[state]};padding:0 .5em;margin-right:.5em`}>{label}</span>
                ))}
                <span id="map-status">connecting…</span>
              </p>
              <div id="map-box" dangerouslySetInnerHTML={{ __html: svg }} />
              <script dangerouslySetInnerHTML={{ __html: CLIENT }} />
            </Layout>
          )
        )
      )
    )
    yield* web.get("/admin/map/events", () =>
      page("staff", () =>
        Effect.map(WebDirectory, (directory) => {
          const encoder = new TextEncoder()
          const events = directory.changes.pipe(
            Stream.map(() => renderToString(<RoomMap cells={cellsOf(directory.machines(), directory.presence(), directory.userGroup)} />)),
            Stream.changes,
            Stream.map((svg) => encoder.encode(`event: map\ndata: ${svg.replace(/\n/g, "\ndata: ")}\n\n`)),
            Stream.interruptWhen(draining)
          )
          return HttpServerResponse.stream(Stream.concat(Stream.make(encoder.encode("retry: 1000\n\n")), events), {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
          })
        })
      )
    )
  })
)
