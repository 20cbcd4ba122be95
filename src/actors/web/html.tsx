import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { ComponentChildren, VNode } from "preact"
import { renderToString } from "preact-render-to-string"
import type { Viewer } from "./viewer.js"

// Server-rendered pages with preact-render-to-string: JSX checked by the compiler, and every
// text and attribute value escaped by the renderer (no way to forget it, unlike string
// templates or @kitajs/html, whose children are raw unless marked `safe`).

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#234;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center}
header a{color:#fff} header form{margin-left:auto}
main{padding:1em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
.error{background:#fdd;border:1px solid #c00;padding:.5em;margin:.5em 0}
.notice{background:#dfd;border:1px solid #0a0;padding:.5em;margin:.5em 0}
form.inline{display:inline}
fieldset{margin:.5em 0}
@media print{header,.noprint{display:none}}
`

export const Layout = (props: { viewer: Viewer | undefined; title: string; children?: ComponentChildren }): VNode => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <title>{props.title} · prolo</title>
      <style dangerouslySetInnerHTML={{ __html: STYLE }} />
    </head>
    <body>
      <header>
        <a href="/">prolo</a>
        {props.viewer === undefined ? null : (
          <>
            <a href="/champions/mine/">champions</a>
            <a href="/matches/">matches</a>
            <a href="/maps/">maps</a>
            <a href="/status/">status</a>
          </>
        )}
        {props.viewer?.staff === true ? (
          <>
            <a href="/admin/machines">machines</a>
            <a href="/admin/users">users</a>
            <a href="/admin/map">room map</a>
          </>
        ) : null}
        {props.viewer === undefined ? (
          <a href="/login">log in</a>
        ) : (
          <form method="post" action="/logout">
            <span id="whoami">{props.viewer.login}</span> <Csrf viewer={props.viewer} />
            <button type="submit">log out</button>
          </form>
        )}
      </header>
      <main>
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </body>
  </html>
)

/** The hidden field every form posts back; checked on every POST. */
export const Csrf = (props: { viewer: Viewer }): VNode => <input type="hidden" name="_csrf" value={props.viewer.csrf} />

export const ErrorBox = (props: { message: string | undefined }): VNode | null =>
  props.message === undefined ? null : <p class="error" role="alert">{props.message}</p>

export const Notice = (props: { message: string | undefined }): VNode | null =>
  props.message === undefined ? null : <p class="notice">{props.message}</p>

export const htmlResponse = (page: VNode, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(`<!doctype html>${renderToString(page)}`, { status, contentType: "text/html; charset=utf-8" })

export const simplePage = (viewer: Viewer | undefined, title: string, message: string, status: number) =>
  htmlResponse(
    <Layout viewer={viewer} title={title}>
      <p class="error">{message}</p>
    </Layout>,
    status
  )
