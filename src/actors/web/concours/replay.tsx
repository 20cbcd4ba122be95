import { gunzipSync } from "node:zlib"

// The reference game's replay, turn by turn (games/reference/server.py of the worker lane):
// `dump.json.gz` holds each turn's state `{turn, cells, scores}` and the final one;
// `replay.gz` holds `reference-game replay v1` then one line per turn: `<turn> <move of client 0> …`
// (-1: no valid move). The page gets both as one JSON attribute and a small script steps
// through them; nothing but text is ever written into the page from it.

export interface ReplayTurn {
  readonly turn: number
  readonly cells: ReadonlyArray<number>
  readonly scores: ReadonlyArray<number>
  readonly moves: ReadonlyArray<number>
}

export interface Replay {
  readonly turns: ReadonlyArray<ReplayTurn>
  readonly final: { readonly cells: ReadonlyArray<number>; readonly scores: ReadonlyArray<number> }
}

const numbers = (v: unknown): ReadonlyArray<number> => (Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [])

/** The replay of a reference-game match, or undefined when the files are not that game's. */
export const readReplay = (dumpGz: Uint8Array, replayGz: Uint8Array | undefined): Replay | undefined => {
  try {
    const dump = JSON.parse(gunzipSync(dumpGz).toString("utf8")) as { turns?: unknown; final?: { cells?: unknown; scores?: unknown } }
    const lines = replayGz === undefined ? [] : gunzipSync(replayGz).toString("utf8").split("\n").slice(1)
    const moves = new Map<number, ReadonlyArray<number>>()
    for (const line of lines) {
      const [turn, ...rest] = line.trim().split(/\s+/).map(Number)
      if (turn !== undefined && Number.isInteger(turn)) moves.set(turn, rest)
    }
    if (!Array.isArray(dump.turns)) return undefined
    const turns = dump.turns.map((t: { turn?: unknown; cells?: unknown; scores?: unknown }) => {
      const turn = typeof t.turn === "number" ? t.turn : 0
      return { turn, cells: numbers(t.cells), scores: numbers(t.scores), moves: moves.get(turn) ?? [] }
    })
    return { turns, final: { cells: numbers(dump.final?.cells), scores: numbers(dump.final?.scores) } }
  } catch {
    return undefined
  }
}

const VIEWER = `
const box = document.getElementById("replay")
const data = JSON.parse(box.dataset.replay)
const names = JSON.parse(box.dataset.players)
let i = 0
const board = document.getElementById("replay-board")
const label = document.getElementById("replay-turn")
const scores = document.getElementById("replay-scores")
function show() {
  const t = data.turns[i]
  label.textContent = "turn " + (i + 1) + " / " + data.turns.length
  board.replaceChildren(...t.cells.map((v, c) => {
    const cell = document.createElement("span")
    cell.className = "replay-cell"
    const who = t.moves.map((m, p) => (m === c ? names[p] : null)).filter((x) => x !== null)
    cell.textContent = v + (who.length ? " ← " + who.join(", ") : "")
    if (who.length === 1) cell.style.background = "#bfb"
    if (who.length > 1) cell.style.background = "#fbb"
    return cell
  }))
  scores.textContent = names.map((n, p) => n + ": " + (t.scores[p] ?? 0)).join("   ")
}
document.getElementById("replay-prev").onclick = () => { if (i > 0) { i--; show() } }
document.getElementById("replay-next").onclick = () => { if (i < data.turns.length - 1) { i++; show() } }
show()
`

export const ReplayViewer = (props: { replay: Replay; players: ReadonlyArray<string> }) => (
  <div id="replay" data-replay={JSON.stringify(props.replay)} data-players={JSON.stringify(props.players)}>
    <style dangerouslySetInnerHTML={{ __html: ".replay-cell{display:inline-block;min-width:5em;border:1px solid #888;margin:2px;padding:.3em}" }} />
    <p>
      <button type="button" id="replay-prev">◀ previous</button> <span id="replay-turn" /> <button type="button" id="replay-next">next ▶</button>
    </p>
    <div id="replay-board" />
    <p id="replay-scores" />
    <p>final scores: {props.players.map((n, p) => `${n}: ${props.replay.final.scores[p] ?? 0}`).join(", ")}</p>
    <script dangerouslySetInnerHTML={{ __html: VIEWER }} />
  </div>
)
