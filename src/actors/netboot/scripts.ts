import type { Switch } from "../../protocols/mdb.js"

// Every iPXE script netboot serves (spec mdb.md §6), as pure functions of their data. The texts
// the spec quotes are kept word for word; the bootstrap script follows its description of the
// original script.ipxe (banner, timeout 60, room short names, alien registration menu with the
// LLDP and manual paths, summary, chain to /register).

const lines = (...l: ReadonlyArray<string>): string => `${l.join("\n")}\n`

export const SWITCH_MARKER = "#%%NETBOOT_REPLACE_SWITCH_INFO%%"

export const BOOTSTRAP_TEMPLATE = lines(
  "#!ipxe",
  "",
  "echo",
  "echo ===== Prologin netboot =====",
  "echo",
  "set timeout 60",
  "set short_pasteur pas",
  "set short_alt alt",
  "",
  SWITCH_MARKER,
  "",
  "iseq ${scriptlet} alien && goto alien ||",
  "chain http://netboot/boot/${mac}/ || goto reboot",
  "",
  ":reboot",
  "echo Rebooting in 10 seconds.",
  "sleep 10",
  "reboot",
  "",
  ":alien",
  "menu Machine not known by MDB. Do you want to register this machine?",
  "item lldp Yes (with LLDP, contestant only)",
  "item manual Yes (without LLDP)",
  "item no No",
  "item shell Drop to an iPXE shell",
  "choose choice || goto alien",
  "goto ${choice}",
  "",
  ":no",
  "goto reboot",
  "",
  ":shell",
  "shell",
  "goto alien",
  "",
  ":lldp",
  "set waited:int32 0",
  ":lldp_wait",
  "isset ${netX.lldp/lldpsource} && goto lldp_found ||",
  "iseq ${waited} ${timeout} && goto lldp_timeout ||",
  "sleep 1",
  "inc waited",
  "goto lldp_wait",
  ":lldp_timeout",
  "echo No LLDP information received within ${timeout} seconds.",
  "prompt Press any key to go back to the menu.",
  "goto alien",
  ":lldp_found",
  "echo LLDP chassis id: ${netX.lldp/chassis}",
  "echo LLDP port id: ${netX.lldp/port}",
  "echo LLDP port description: ${netX.lldp/portdesc}",
  "echo LLDP system name: ${netX.lldp/sysname}",
  "echo LLDP system description: ${netX.lldp/sysdesc}",
  "echo LLDP VLAN ids: ${netX.lldp/vlan}",
  "set sw 0",
  ":lldp_switch",
  "isset ${sw_name_${sw}} || goto manual",
  "iseq ${sw_name_${sw}} ${netX.lldp/chassis} && goto lldp_match ||",
  "inc sw",
  "goto lldp_switch",
  ":lldp_match",
  "set rfs ${sw_rfs_${sw}}",
  "set hfs ${sw_hfs_${sw}}",
  "set room ${sw_room_${sw}}",
  "set mtype user",
  "set hostname ${short_${room}}-r",
  "echo Hostname: usually pas-r0Xp0Y or alt-r0Xp0Y",
  "read hostname",
  "goto summary",
  "",
  ":manual",
  "echo MAC address: ${mac}",
  "echo -n Hostname: && read hostname",
  "echo -n Nearest RFS id: && read rfs",
  "echo -n Nearest HFS id: && read hfs",
  "menu Room",
  "item pasteur pasteur",
  "item alt alt",
  "item cluster cluster",
  "item other other",
  "choose room || goto manual",
  "menu Machine type",
  "item user user",
  "item orga orga",
  "item service service",
  "choose mtype || goto manual",
  "",
  ":summary",
  "echo Hostname: ${hostname}",
  "echo RFS: ${rfs} HFS: ${hfs}",
  "echo Room: ${room}",
  "echo Type: ${mtype}",
  "prompt --key n --timeout 0 Is this correct? (Y/n) && goto manual ||",
  "prompt --key N --timeout 0 && goto manual ||",
  "chain http://netboot/register?hostname=${hostname}&mac=${mac}&rfs=${rfs}&hfs=${hfs}&room=${room}&mtype=${mtype} || goto reboot"
)

/** One block per switch (index in MDB order), blocks separated by a blank line. */
export const switchBlocks = (switches: ReadonlyArray<Pick<Switch, "chassis" | "rfs" | "hfs" | "room">>): string =>
  switches
    .map((s, i) => [`set sw_name_${i} ${s.chassis}`, `set sw_rfs_${i} ${s.rfs}`, `set sw_hfs_${i} ${s.hfs}`, `set sw_room_${i} ${s.room}`].join("\n"))
    .join("\n\n")

export const bootstrapScript = (switches: ReadonlyArray<Pick<Switch, "chassis" | "rfs" | "hfs" | "room">>): string =>
  BOOTSTRAP_TEMPLATE.replace(SWITCH_MARKER, switchBlocks(switches))

export const unknownMacScript = (): string =>
  lines("#!ipxe", "echo An error occurred: netboot can't find the MAC in MDB.", "sleep 30", "reboot")

export const faultyScript = (details: string): string =>
  lines("#!ipxe", "echo ERROR: This machine was marked as faulty.", `echo Reason: ${details}`, "echo", "sleep 60", "reboot")

export const registrationErrorScript = (message: string): string =>
  lines("#!ipxe", `echo Registration failure! Something went wrong: ${message}`, "echo Waiting for 30s and rebooting.", "sleep 30", "reboot")

export const registrationDoneScript = (): string =>
  lines("#!ipxe", "echo Registration done! Waiting for 30s and rebooting.", "sleep 30", "reboot")

export const bootScript = (o: { readonly rfs: number; readonly rfsIp: string; readonly initrd: string; readonly options: string }): string =>
  lines(
    "#!ipxe",
    `echo Booting the kernel on ${o.rfsIp}:/nfsroot`,
    `initrd http://rfs${o.rfs}/boot/${o.initrd}`,
    `boot http://rfs${o.rfs}/boot/vmlinuz-linux nfsroot=${o.rfsIp}:/export/nfsroot,ro ${o.options}`
  )

export const initrdName = (fallback: boolean): string => (fallback ? "initramfs-linux-fallback.img" : "initramfs-linux.img")
