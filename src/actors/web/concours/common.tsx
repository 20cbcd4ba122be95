import type { HttpServerResponse } from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { htmlResponse, Layout } from "../html.js"
import type { Viewer } from "../viewer.js"
import type { ConcoursUnavailable, Forbidden, NotFound } from "./model.js"

// Bits every concours page shares: paging, and the page a typed failure becomes.

export const pageOf = (url: string, size: number) => {
  const n = Number(new URL(url, "http://x").searchParams.get("page") ?? "1")
  const page = Number.isSafeInteger(n) && n >= 1 ? n : 1
  return { page, offset: (page - 1) * size, limit: size }
}

export const Pager = (props: { url: string; page: number; size: number; count: number }) => {
  const last = Math.max(1, Math.ceil(props.count / props.size))
  const link = (n: number) => {
    const u = new URL(props.url, "http://x")
    u.searchParams.set("page", String(n))
    return `${u.pathname}${u.search}`
  }
  return (
    <p class="pager">
      {props.page > 1 ? <a href={link(props.page - 1)}>« previous</a> : null} page {props.page} of {last} ({props.count}){" "}
      {props.page < last ? <a href={link(props.page + 1)}>next »</a> : null}
    </p>
  )
}

export const failurePage = (viewer: Viewer, e: NotFound | Forbidden | ConcoursUnavailable): Effect.Effect<HttpServerResponse> =>
  Effect.succeed(
    htmlResponse(
      <Layout viewer={viewer} title={e._tag === "NotFound" ? "Not found" : e._tag === "Forbidden" ? "Forbidden" : "Try again"}>
        <p class="error">{e.message}</p>
      </Layout>,
      e._tag === "NotFound" ? 404 : e._tag === "Forbidden" ? 403 : 503
    )
  )

export const idParam = (url: string, index: number): number => {
  const raw = new URL(url, "http://x").pathname.split("/")[index] ?? ""
  return /^\d{1,9}$/.test(raw) ? Number(raw) : -1
}

export const when = (iso: string) => iso.replace("T", " ").slice(0, 19)
