/**
 * The API documentation page (GET /docs), rendered once on the server from openapi.yaml and the error
 * table: operations, schemas and error codes as plain HTML with one inline style sheet and no script, so it
 * works with no network (no CDN) under a Content-Security-Policy that allows nothing else.
 */
import { createHash } from 'node:crypto'
import { ALL_ERROR_CODES, ERROR_CODES } from '../errors.js'
import type { JsonSchema, OpenApiDocument, OpenApiOperation, OpenApiResponse } from './openapi-document.js'

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

const STYLE = `
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f24; }
h1 { margin-bottom: 0 } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.5rem }
h3 { margin: 1.8rem 0 .4rem; font-size: 1.05rem } code, .path { font-family: ui-monospace, monospace; font-size: .92em }
.desc { white-space: pre-wrap } .muted { color: #57606a }
.method { display: inline-block; min-width: 3.6rem; text-align: center; border-radius: 4px; color: #fff; font-weight: 600; font-size: .8rem; padding: .1rem .4rem; margin-right: .4rem; background: #57606a }
.get { background: #1f6feb } .post { background: #1a7f37 }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .92rem }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top }
th { background: #f6f8fa } nav a { margin-right: 1rem }
`

/** The Content-Security-Policy of the page: its one style sheet, by hash, and nothing else. */
export const DOCS_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function refName (ref: unknown): string | undefined {
  return typeof ref === 'string' ? ref.split('/').pop() : undefined
}

function schemaLink (name: string): string {
  return `<a href="#schema-${escapeHtml(name)}"><code>${escapeHtml(name)}</code></a>`
}

/** A short description of a schema's type and constraints, as HTML. */
function typeOf (schema: JsonSchema | undefined): string {
  if (schema === undefined) return ''
  const ref = refName(schema.$ref)
  if (ref !== undefined) return schemaLink(ref)
  if (schema.const !== undefined) return `<code>${escapeHtml(JSON.stringify(schema.const))}</code>`
  let text: string
  const type = schema.type
  if (Array.isArray(type)) text = type.map(escapeHtml).join(' | ')
  else if (type === 'array') text = `array of ${typeOf(schema.items as JsonSchema | undefined) || 'any'}`
  else if (typeof type === 'string') text = escapeHtml(type)
  else text = 'any'
  if (Array.isArray(schema.enum)) text += `: one of ${schema.enum.map((v) => `<code>${escapeHtml(v)}</code>`).join(', ')}`
  const limits = ['minLength', 'maxLength', 'minimum', 'maximum', 'pattern', 'format']
    .filter((k) => schema[k] !== undefined)
    .map((k) => `${k} <code>${escapeHtml(schema[k])}</code>`)
  return limits.length > 0 ? `${text} <span class="muted">(${limits.join(', ')})</span>` : text
}

function operationHtml (doc: OpenApiDocument, path: string, method: string, op: OpenApiOperation): string {
  const out: string[] = []
  out.push(`<h3 id="op-${escapeHtml(op.operationId ?? `${method}-${path}`)}"><span class="method ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</span>` +
    `<span class="path">${escapeHtml(path)}</span> ${op.summary === undefined ? '' : `— ${escapeHtml(op.summary)}`}</h3>`)
  if (op.description !== undefined) out.push(`<div class="desc">${escapeHtml(op.description.trim())}</div>`)
  if (op.parameters !== undefined && op.parameters.length > 0) {
    out.push('<table><tr><th>parameter</th><th>in</th><th>required</th><th>type</th><th>description</th></tr>')
    for (const p of op.parameters) {
      out.push(`<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td><td>${p.required === true ? 'yes' : 'no'}</td>` +
        `<td>${typeOf(p.schema)}</td><td>${escapeHtml(p.description ?? '')}</td></tr>`)
    }
    out.push('</table>')
  }
  if (op.requestBody?.content !== undefined) {
    for (const [type, media] of Object.entries(op.requestBody.content)) {
      out.push(`<p>Request body (<code>${escapeHtml(type)}</code>${op.requestBody.required === true ? '' : ', optional'}): ${typeOf(media.schema)}</p>`)
    }
  }
  out.push('<table><tr><th>status</th><th>description</th><th>body</th></tr>')
  for (const [status, entry] of Object.entries(op.responses)) {
    const name = refName((entry as { $ref?: unknown }).$ref)
    const response: OpenApiResponse | undefined = name === undefined ? entry as OpenApiResponse : doc.components?.responses?.[name]
    const bodies = Object.entries(response?.content ?? {}).map(([type, media]) => `${typeOf(media.schema)} <span class="muted">${escapeHtml(type)}</span>`)
    out.push(`<tr><td><code>${escapeHtml(status)}</code></td><td>${escapeHtml(response?.description ?? '')}</td><td>${bodies.join('<br>')}</td></tr>`)
  }
  out.push('</table>')
  return out.join('\n')
}

function schemaHtml (name: string, schema: JsonSchema): string {
  const out = [`<h3 id="schema-${escapeHtml(name)}"><code>${escapeHtml(name)}</code></h3>`]
  if (typeof schema.description === 'string') out.push(`<div class="desc">${escapeHtml(schema.description.trim())}</div>`)
  const properties = schema.properties as Record<string, JsonSchema> | undefined
  if (properties === undefined) {
    out.push(`<p>${typeOf(schema)}</p>`)
    return out.join('\n')
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required as string[] : [])
  out.push(`<p>object${schema.additionalProperties === false ? ', no other members' : ''}</p>`)
  out.push('<table><tr><th>member</th><th>type</th><th>required</th><th>description</th></tr>')
  for (const [prop, sub] of Object.entries(properties)) {
    out.push(`<tr><td><code>${escapeHtml(prop)}</code></td><td>${typeOf(sub)}</td><td>${required.has(prop) ? 'yes' : 'no'}</td>` +
      `<td>${escapeHtml(typeof sub.description === 'string' ? sub.description : '')}</td></tr>`)
  }
  out.push('</table>')
  return out.join('\n')
}

function errorCodesHtml (): string {
  const out = ['<table><tr><th>code</th><th>status</th><th>message</th><th>hint</th></tr>']
  for (const code of ALL_ERROR_CODES) {
    const def = ERROR_CODES[code]
    out.push(`<tr id="error-${escapeHtml(code)}"><td><code>${escapeHtml(code)}</code></td><td>${def.status}</td><td>${escapeHtml(def.message)}</td><td>${escapeHtml(def.hint)}</td></tr>`)
  }
  out.push('</table>')
  return out.join('\n')
}

export function renderDocsPage (doc: OpenApiDocument): string {
  const { info } = doc
  const operations: string[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method]
      if (op !== undefined) operations.push(operationHtml(doc, path, method, op))
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {}).map(([name, schema]) => schemaHtml(name, schema))
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title)} ${escapeHtml(info.version)} — API</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(info.title)} <span class="muted">${escapeHtml(info.version)}</span></h1>
${info.summary === undefined ? '' : `<p>${escapeHtml(info.summary)}</p>`}
<nav><a href="#operations">Operations</a><a href="#schemas">Schemas</a><a href="#errors">Error codes</a><a href="openapi.json">openapi.json</a></nav>
${info.description === undefined ? '' : `<div class="desc">${escapeHtml(info.description.trim())}</div>`}
<h2 id="operations">Operations</h2>
${operations.join('\n')}
<h2 id="schemas">Schemas</h2>
${schemas.join('\n')}
<h2 id="errors">Error codes</h2>
<p>Every error response carries one of these codes. The status tells a caller what to do; the code tells why.</p>
${errorCodesHtml()}
</body>
</html>
`
}
