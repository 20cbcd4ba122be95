import { Option, ParseResult, SchemaAST as AST } from "effect"

// Turns a Schema ParseError into the three parts of a one-line config message:
// where (key path), what was expected, what was found. Only the first problem is
// reported: an operator fixes one line, reruns, sees the next.

export interface IssueSummary {
  readonly keyPath: string
  readonly expected: string
  readonly got?: string
}

const describe = (ast: AST.AST): string => {
  const own = AST.getDescriptionAnnotation(ast).pipe(Option.orElse(() => AST.getTitleAnnotation(ast)))
  if (Option.isSome(own)) return own.value
  switch (ast._tag) {
    case "Union":
      return ast.types
        .filter((t) => t._tag !== "UndefinedKeyword")
        .map(describe)
        .join(" or ")
    case "TypeLiteral":
      return "a mapping"
    case "TupleType":
      return "a list"
    case "Literal":
      return JSON.stringify(ast.literal)
    case "Refinement":
      return describe(ast.from)
    case "Transformation":
      return describe(ast.from)
    case "Suspend":
      return describe(ast.f())
    default:
      return String(ast)
  }
}

const show = (actual: unknown): string => {
  if (actual === undefined) return "nothing"
  let text: string
  try {
    text = JSON.stringify(actual) ?? String(actual)
  } catch {
    text = String(actual)
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

const renderPath = (keys: ReadonlyArray<PropertyKey>): string =>
  keys.reduce<string>((acc, k) => {
    if (typeof k === "number") return `${acc}[${k}]`
    const key = String(k)
    return acc === "" ? key : `${acc}.${key}`
  }, "")

// A custom message reads "<expected>, got <found>" so that it splits like the built-in ones.
const fromMessage = (keys: ReadonlyArray<PropertyKey>, message: string): IssueSummary => {
  const at = message.indexOf(", got ")
  return at < 0
    ? { keyPath: renderPath(keys), expected: message }
    : { keyPath: renderPath(keys), expected: message.slice(0, at), got: message.slice(at + 6) }
}

const first = (issues: ParseResult.SingleOrNonEmpty<ParseResult.ParseIssue>): ParseResult.ParseIssue =>
  Array.isArray(issues) ? (issues as ReadonlyArray<ParseResult.ParseIssue>)[0]! : (issues as ParseResult.ParseIssue)

const walk = (
  issue: ParseResult.ParseIssue,
  keys: ReadonlyArray<PropertyKey>,
  mapping: AST.TypeLiteral | undefined
): IssueSummary => {
  const here = renderPath(keys)
  switch (issue._tag) {
    case "Pointer":
      return walk(issue.issue, [...keys, ...(Array.isArray(issue.path) ? issue.path : [issue.path])], mapping)
    case "Composite":
      if (issue.ast._tag === "Union") return { keyPath: here, expected: describe(issue.ast), got: show(issue.actual) }
      return walk(first(issue.issues), keys, issue.ast._tag === "TypeLiteral" ? issue.ast : mapping)
    case "Refinement":
      if (issue.kind === "Predicate" && issue.issue._tag === "Type" && issue.issue.message !== undefined) {
        return fromMessage(keys, issue.issue.message)
      }
      return { keyPath: here, expected: describe(issue.ast), got: show(issue.actual) }
    case "Transformation":
      if (issue.kind === "Encoded" && Option.isSome(AST.getDescriptionAnnotation(issue.ast))) {
        return { keyPath: here, expected: describe(issue.ast), got: show(issue.actual) }
      }
      return walk(issue.issue, keys, mapping)
    case "Type":
      return issue.message !== undefined
        ? fromMessage(keys, issue.message)
        : { keyPath: here, expected: describe(issue.ast), got: show(issue.actual) }
    case "Missing":
      // For a missing key the issue carries the (property signature) wrapper, not the type.
      return { keyPath: here, expected: describe(issue.ast.type), got: "nothing" }
    case "Unexpected": {
      const known = mapping?.propertySignatures.map((p) => String(p.name)) ?? []
      return {
        keyPath: here,
        expected: known.length > 0 ? `one of the keys ${known.join(", ")}` : "no key here",
        got: "an unknown key"
      }
    }
    case "Forbidden":
      return { keyPath: here, expected: issue.message ?? "a value decodable without effects", got: show(issue.actual) }
  }
}

export const describeParseError = (error: ParseResult.ParseError): IssueSummary => walk(error.issue, [], undefined)
