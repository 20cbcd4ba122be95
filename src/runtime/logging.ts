import { Cause, HashMap, Layer, Logger, LogLevel } from "effect"

// The names `--log-level` accepts, lowest first.
export const logLevelNames = ["trace", "debug", "info", "warning", "error", "none"] as const
export type LogLevelName = (typeof logLevelNames)[number]

const levels: Record<LogLevelName, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

const render = (value: unknown): string => {
  if (typeof value === "string") return value
  if (value instanceof Error) return `${value.name}: ${value.message}`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// One line per event on stderr, `2026-12-05T03:50:00.123Z [LEVEL] message key=value…`: the
// time (UTC, from the fiber's Clock) lets an operator line events up across hosts and with the
// node's own HTTP and database logs, wherever stderr goes. A failure's cause follows on its
// own lines because a defect's stack is what makes it fixable.
export const lineLogger = (write: (line: string) => void) =>
  Logger.make<unknown, void>(({ annotations, cause, date, logLevel, message }) => {
    const parts = Array.isArray(message) ? message.map(render) : [render(message)]
    let line = `${date.toISOString()} [${logLevel.label}] ${parts.join(" ")}`
    for (const [key, value] of HashMap.toEntries(annotations)) line += ` ${key}=${render(value)}`
    if (!Cause.isEmpty(cause)) line += `\n${Cause.pretty(cause, { renderErrorCause: true })}`
    write(line)
  })

const toStderr = lineLogger((line) => {
  process.stderr.write(`${line}\n`)
})

// Replaces Effect's default logger for a whole process and sets its minimum level.
export const loggingLayer = (level: LogLevelName): Layer.Layer<never> =>
  Layer.merge(Logger.replace(Logger.defaultLogger, toStderr), Logger.minimumLogLevel(levels[level]))
