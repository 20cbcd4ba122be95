import { Effect } from "effect"
import { HfsRpcs, HfsStatusRpcs } from "../../protocols/hfs.js"
import { Hfs } from "./service.js"

/** `via`: the HFS whose own rpc port serves these handlers; none on the node's HTTP port. */
export const hfsHandlers = (via?: number) =>
  HfsRpcs.toLayer(
    Effect.map(Hfs, (hfs) => HfsRpcs.of({
      getHome: ({ login, hostname }) => hfs.getHome(login, hostname, via),
      handOver: ({ login, to }) => hfs.handOver(login, to, via),
      movedAway: ({ login }) => hfs.movedAway(login, via),
      migrate: ({ login, to }) => hfs.migrate(login, to)
    }))
  )

export const HfsStatusHandlers = HfsStatusRpcs.toLayer(
  Effect.map(Hfs, (hfs) =>
    HfsStatusRpcs.of({
      where: ({ login }) => hfs.where(login),
      list: () => hfs.list,
      status: () => hfs.status
    })
  )
)
