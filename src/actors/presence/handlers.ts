import { Effect } from "effect"
import { PresenceListRpcs, PresenceRpcs } from "../../protocols/presence.js"
import { Presence } from "./service.js"

export const PresenceHandlers = PresenceRpcs.toLayer(
  Effect.map(Presence, (presence) =>
    PresenceRpcs.of({
      RequestLogin: ({ hostname, login }) => presence.requestLogin(login, hostname),
      Heartbeat: ({ hostname, login }) => presence.heartbeat(login, hostname),
      Logout: ({ hostname, login }) => presence.logout(login, hostname)
    })
  )
)

export const PresenceListHandlers = PresenceListRpcs.toLayer(
  Effect.map(Presence, (presence) => PresenceListRpcs.of({ List: () => presence.list }))
)
