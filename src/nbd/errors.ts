import { Schema } from "effect"

// Operator-facing failures of the export registry and the listener. Protocol-level
// problems of one client never surface here: they are answered on the wire or end
// that connection only.

export class NbdInvalidExport extends Schema.TaggedError<NbdInvalidExport>()("NbdInvalidExport", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid NBD export ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

export class NbdExportExists extends Schema.TaggedError<NbdExportExists>()("NbdExportExists", {
  name: Schema.String,
  generation: Schema.Number
}) {
  override get message() {
    return `NBD export ${JSON.stringify(this.name)} already exists at generation ${this.generation}`
  }
}

export class NbdExportNotFound extends Schema.TaggedError<NbdExportNotFound>()("NbdExportNotFound", {
  name: Schema.String
}) {
  override get message() {
    return `no NBD export named ${JSON.stringify(this.name)}`
  }
}

export class NbdStaleGeneration extends Schema.TaggedError<NbdStaleGeneration>()("NbdStaleGeneration", {
  name: Schema.String,
  current: Schema.Number,
  requested: Schema.Number
}) {
  override get message() {
    return `NBD export ${JSON.stringify(this.name)} is at generation ${this.current}; generation ${this.requested} is not newer`
  }
}

export class NbdListenError extends Schema.TaggedError<NbdListenError>()("NbdListenError", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `cannot listen for NBD on ${this.host}:${this.port}: ${this.reason}`
  }
}
