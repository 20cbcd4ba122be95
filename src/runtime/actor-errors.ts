import { Schema } from "effect"

// The mailbox was full when the message was offered. Offers fail fast rather than
// wait: a caller blocked on a wedged actor would pile up silently, while this error
// reaches the operator with the actor and the bound that was hit.
export class MailboxFull extends Schema.TaggedError<MailboxFull>()("MailboxFull", {
  path: Schema.String,
  capacity: Schema.Number,
  message: Schema.String
}) {}

// The actor is gone: stopped by its scope (shutdown, passivation) or after it
// escalated. Messages it still held are answered with this instead of hanging.
export class ActorStopped extends Schema.TaggedError<ActorStopped>()("ActorStopped", {
  path: Schema.String,
  reason: Schema.Literal("stopped", "escalated"),
  message: Schema.String
}) {}

// The handler for this message died (a bug, not a domain failure). Only the message
// that hit it gets this; the actor restarts and goes on with the messages behind it.
export class ActorDefect extends Schema.TaggedError<ActorDefect>()("ActorDefect", {
  path: Schema.String,
  messageTag: Schema.String,
  defect: Schema.String,
  message: Schema.String
}) {}

// A keyed registry refused to spawn one more actor. Idle actors count until they
// are passivated.
export class TooManyActors extends Schema.TaggedError<TooManyActors>()("TooManyActors", {
  path: Schema.String,
  cap: Schema.Number,
  message: Schema.String
}) {}

export const mailboxFull = (path: string, capacity: number) =>
  new MailboxFull({ path, capacity, message: `mailbox of ${path} is full (capacity ${capacity})` })

export const actorStopped = (path: string, reason: "stopped" | "escalated") =>
  new ActorStopped({
    path,
    reason,
    message:
      reason === "escalated"
        ? `actor ${path} stopped after too many restarts (escalated to its parent)`
        : `actor ${path} is stopped`
  })

export const actorDefect = (path: string, messageTag: string, defect: string) =>
  new ActorDefect({ path, messageTag, defect, message: `actor ${path} died handling ${messageTag}: ${defect}` })

export const tooManyActors = (path: string, cap: number) =>
  new TooManyActors({ path, cap, message: `registry ${path} already runs its cap of ${cap} live actors` })
