import { Schema } from "effect"

// Every way a home transfer fails, each with what an operator needs to act. None of them
// changes the source (it stays the home) or the final path on the destination.

/** The source HFS cannot be reached (refused, no route, connect timeout). */
export class PeerUnreachable extends Schema.TaggedError<PeerUnreachable>()("PeerUnreachable", {
  host: Schema.String,
  port: Schema.Number,
  message: Schema.String
}) {}

/** The source refused our token (wrong secret, expired, bound to another login/generation/peer). */
export class TransferAuthRefused extends Schema.TaggedError<TransferAuthRefused>()("TransferAuthRefused", {
  login: Schema.String,
  reason: Schema.String,
  message: Schema.String
}) {}

/** A window's bytes do not match its checksum: refused before anything of it was written. */
export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  login: Schema.String,
  offset: Schema.Number,
  message: Schema.String
}) {}

/** Not enough room on the destination (checked before writing, or ENOSPC while writing). */
export class DiskFull extends Schema.TaggedError<DiskFull>()("DiskFull", {
  path: Schema.String,
  neededBytes: Schema.Number,
  availableBytes: Schema.Number,
  message: Schema.String
}) {}

/** Every window verified, but the whole-image digest differs: the partial copy is discarded. */
export class DigestMismatch extends Schema.TaggedError<DigestMismatch>()("DigestMismatch", {
  login: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
  message: Schema.String
}) {}

/** The source has no image for this login (or refuses to hand it out at this generation). */
export class SourceImageMissing extends Schema.TaggedError<SourceImageMissing>()("SourceImageMissing", {
  login: Schema.String,
  message: Schema.String
}) {}

/** The source's image is not the one the partial copy was made from (size changed): start over. */
export class SourceChanged extends Schema.TaggedError<SourceChanged>()("SourceChanged", {
  login: Schema.String,
  message: Schema.String
}) {}

/** The peer said nothing (or took nothing) for too long; measured with `Clock`. */
export class TransferTimeout extends Schema.TaggedError<TransferTimeout>()("TransferTimeout", {
  login: Schema.String,
  phase: Schema.String,
  seconds: Schema.Number,
  message: Schema.String
}) {}

/** The peer sent bytes that are not a valid frame here; that connection was closed. */
export class BadFrame extends Schema.TaggedError<BadFrame>()("BadFrame", {
  reason: Schema.String,
  message: Schema.String
}) {}

/** The connection dropped before the end (peer killed, network): resume on the next attempt. */
export class TransferInterrupted extends Schema.TaggedError<TransferInterrupted>()("TransferInterrupted", {
  login: Schema.String,
  message: Schema.String
}) {}

/** A local file operation failed (errno name in `code`). */
export class TransferIoError extends Schema.TaggedError<TransferIoError>()("TransferIoError", {
  path: Schema.String,
  op: Schema.String,
  code: Schema.String,
  message: Schema.String
}) {}

/** The caller asked for something that cannot name a home (bad login, negative generation). */
export class InvalidTransfer extends Schema.TaggedError<InvalidTransfer>()("InvalidTransfer", {
  field: Schema.String,
  message: Schema.String
}) {}

export const TransferError = Schema.Union(
  PeerUnreachable,
  TransferAuthRefused,
  ChecksumMismatch,
  DiskFull,
  DigestMismatch,
  SourceImageMissing,
  SourceChanged,
  TransferTimeout,
  BadFrame,
  TransferInterrupted,
  TransferIoError,
  InvalidTransfer
)
export type TransferError = typeof TransferError.Type

