import type { Machine, NewMachine } from "../../src/protocols/mdb.js"

// Machines the MDB tests (and the end-to-end test, which has no database layer) share.

export const gw: NewMachine = {
  hostname: "gw",
  mac: "11:22:33:44:55:66",
  ip: "192.168.1.254",
  rfs: 0,
  hfs: 0,
  mtype: "service",
  room: "pasteur",
  aliases: "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso"
}

/** `gw` as `query` answers it: the original's `to_dict`. */
export const gwMachine: Machine = {
  hostname: "gw",
  aliases: "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso",
  ip: "192.168.1.254",
  mac: "11:22:33:44:55:66",
  rfs: 0,
  hfs: 0,
  mtype: "service",
  room: "pasteur",
  is_faulty: false,
  is_faulty_details: ""
}
