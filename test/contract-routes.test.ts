/**
 * The contract, served: GET /openapi.json is openapi.yaml as JSON, GET /docs renders it as a self-contained
 * HTML page (no script, nothing external, a CSP that allows only its own style sheet), and neither reflects
 * request input. openapi.yaml is found relative to the package root from src/ and from dist/ alike, and so is
 * the build's JSON copy of it (dist/openapi.json), read instead of the YAML while it is at least as new.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildApp } from '../src/app.js'
import { ALL_ERROR_CODES } from '../src/errors.js'
import { DOCS_CSP, escapeHtml, renderDocsPage } from '../src/http/docs-page.js'
import { loadContract, OPENAPI_JSON_PATH, OPENAPI_PATH, writeContractJson, type OpenApiDocument } from '../src/http/openapi-document.js'
import { OpenApiJsonSchema } from '../src/http/schemas.js'
import type { Config } from '../src/config/types.js'
import { configFor as baseConfigFor } from './helpers/config.js'
import { runNode } from './helpers/node-process.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { tempDir } from './helpers/temp-dir.js'

/** Load shedding is not under test here: a busy CI machine must not turn these answers into 503s. */
function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Config {
  return baseConfigFor(issuers, { loadShedding: { enabled: false }, ...extra })
}

const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as OpenApiDocument
const app = await buildApp(configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]))
t.teardown(() => app.close())

t.test('GET /openapi.json serves openapi.yaml as JSON', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json; charset=utf-8$/)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  const body = res.json() as OpenApiDocument
  t.same(body, spec, 'the same document as the file')
  t.equal(body.openapi, '3.1.0')
  t.ok(body.paths['/openapi.json']?.get, 'it describes itself')
  t.ok(body.paths['/docs']?.get, 'and the docs page')

  const ajv = new Ajv2020({ strict: false })
  t.ok(ajv.validate(OpenApiJsonSchema, body), 'the route\'s response schema accepts it')
  ajv.addSchema({ $id: 'openapi', components: spec.components }, 'openapi')
  t.ok(ajv.validate({ $ref: 'openapi#/components/schemas/OpenApiDocument' }, body), 'and so does the schema in openapi.yaml')

  const head = await app.inject({ method: 'HEAD', url: '/openapi.json' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
})

t.test('GET /docs is a self-contained page listing operations, schemas and error codes', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/docs' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8$/)
  t.equal(res.headers['content-security-policy'], DOCS_CSP)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  const html = res.body
  t.match(html, /^<!doctype html>/)
  t.notMatch(html, /<script/i, 'no script')
  t.notMatch(html, /<(link|img|iframe|object|embed)\b/i, 'no external resource')
  t.notMatch(html, /\b(src|href)="(https?:)?\/\//i, 'no absolute URL is loaded or linked')

  // The one inline style sheet is exactly the one the CSP allows.
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? ''
  t.match(DOCS_CSP, `'sha256-${createHash('sha256').update(style).digest('base64')}'`)
  t.match(DOCS_CSP, /default-src 'none'/)

  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of Object.keys(item)) {
      t.match(html, `<span class="method ${method}">${method.toUpperCase()}</span><span class="path">${path}</span>`, `${method} ${path} is listed`)
    }
  }
  for (const name of Object.keys(spec.components?.schemas ?? {})) t.match(html, `id="schema-${name}"`, `schema ${name} is listed`)
  for (const code of ALL_ERROR_CODES) t.match(html, `id="error-${code}"`, `error code ${code} is listed`)
  t.match(html, /<a href="#schema-VerifyRequest"><code>VerifyRequest<\/code><\/a>/, 'schemas are linked')
  t.match(html, /<a href="openapi.json">/, 'the JSON document is linked relatively')
})

t.test('hostile requests to the contract routes', async (t) => {
  const page = (await app.inject({ method: 'GET', url: '/docs' })).body
  const json = (await app.inject({ method: 'GET', url: '/openapi.json' })).body
  const reflected = await app.inject({ method: 'GET', url: `/docs?q=${encodeURIComponent('"><script>alert(1)</script>')}&${'x'.repeat(4000)}=1` })
  t.equal(reflected.statusCode, 200)
  t.equal(reflected.body, page, 'the query changes nothing and is not reflected')
  t.equal((await app.inject({ method: 'GET', url: '/openapi.json?format=yaml' })).body, json)

  for (const [method, url] of [['POST', '/docs'], ['PUT', '/openapi.json'], ['DELETE', '/docs']] as const) {
    const res = await app.inject({ method, url, payload: method === 'DELETE' ? undefined : { a: 1 } })
    t.same([res.statusCode, res.json().code, res.headers.allow], [405, 'method_not_allowed', 'GET, HEAD'], `${method} ${url}: a coded 405 with Allow`)
  }
  for (const [method, url] of [['GET', '/docs/'], ['GET', '/docs/..%2fopenapi.yaml'], ['GET', '/openapi.yaml'], ['GET', '/%2e%2e/package.json']] as const) {
    const res = await app.inject({ method, url })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.equal(res.json().code, 'not_found', `${method} ${url}: a coded 404`)
  }
  const weird = await app.inject({ method: 'GET', url: '/docs', headers: { accept: 'application/json', 'accept-encoding': 'br;q=1000' } })
  t.equal(weird.statusCode, 200, 'Accept headers do not matter')
})

t.test('the page escapes everything it takes from the document', async (t) => {
  const hostile: OpenApiDocument = {
    openapi: '3.1.0',
    info: { title: '<script>t</script>', version: '"1"', summary: '<evil-0>', description: '<img src=x onerror=alert(1)>' },
    paths: {
      '/a"><evil-1>': {
        get: {
          operationId: '"><evil-2>',
          summary: '<evil-3>',
          description: '<evil-4>',
          parameters: [{ name: '<evil-5>', in: '<evil-6>', description: '<evil-7>', schema: { type: 'string', pattern: '<evil-8>' } }],
          requestBody: { content: { '<evil-9>': { schema: { type: '<evil-10>' } } } },
          responses: { 200: { description: '<evil-11>', content: { 'application/json': { schema: { $ref: '#/components/schemas/<evil-12>' } } } } }
        }
      }
    },
    components: { schemas: { '<evil-12>': { type: 'object', description: '<evil-13>', properties: { '<evil-14>': { enum: ['<evil-15>'], description: '<evil-16>' } } } } }
  }
  const html = renderDocsPage(hostile)
  t.notMatch(html, /<evil-|<script|<img /, 'no markup from the document survives')
  const shown = new Set(html.match(/&#60;evil-\d+/g)?.map((m) => Number(m.slice('&#60;evil-'.length))))
  t.same([...shown].sort((x, y) => x - y), Array.from({ length: 17 }, (_, i) => i), 'every value is shown, escaped')
  t.match(html, '&#60;script&#62;t&#60;/script&#62;')
  t.equal(escapeHtml(`<>&"'`), '&#60;&#62;&#38;&#34;&#39;')
})

t.test('openapi.yaml is found from src/ and from dist/; a missing or wrong file fails loudly', async (t) => {
  t.equal(OPENAPI_PATH, new URL('../openapi.yaml', import.meta.url).pathname)
  const build = JSON.parse(readFileSync(new URL('../tsconfig.build.json', import.meta.url), 'utf8')) as { compilerOptions: { rootDir: string, outDir: string } }
  t.same([build.compilerOptions.rootDir, build.compilerOptions.outDir], ['src', 'dist'], 'dist/ mirrors src/ one level below the root, so the relative path holds')
  const built = new URL('../dist/http/openapi-document.js', import.meta.url)
  t.ok(existsSync(built), 'dist/http/openapi-document.js exists (npm test builds first, in pretest)')
  const mod = await import(pathToFileURL(built.pathname).href) as { OPENAPI_PATH: string }
  t.equal(mod.OPENAPI_PATH, OPENAPI_PATH, 'the build resolves the same file')
  t.throws(() => loadContract('/nonexistent/openapi.yaml'), /cannot load the OpenAPI document \/nonexistent\/openapi\.yaml \(it must ship next to dist\/\)/)
  const dir = tempDir(t, { 'other.yaml': 'hello: world\n' })
  t.throws(() => loadContract(`${dir}/other.yaml`), /is not an OpenAPI document/)
})

t.test('the build writes openapi.yaml as JSON to dist/openapi.json; the copy is read while it is at least as new as the YAML', async (t) => {
  t.equal(OPENAPI_JSON_PATH, new URL('../dist/openapi.json', import.meta.url).pathname, 'found from src/ and dist/ alike')
  const written = await runNode('src/write-contract-json.ts')
  t.equal(written.code, 0, written.stderr)
  t.equal(written.stdout, `wrote ${OPENAPI_JSON_PATH}\n`)
  t.same(JSON.parse(readFileSync(OPENAPI_JSON_PATH, 'utf8')), spec, 'the copy is openapi.yaml, parsed')
  t.ok(statSync(OPENAPI_JSON_PATH).mtimeMs >= statSync(OPENAPI_PATH).mtimeMs, 'and newer than it')

  const yaml = (title: string): string => `openapi: 3.1.0\ninfo: { title: ${title}, version: '1' }\npaths: {}\n`
  const dir = tempDir(t, { 'c.yaml': yaml('from-yaml') })
  const [path, copy] = [`${dir}/c.yaml`, `${dir}/c.json`]
  writeContractJson(path, copy)
  t.same(JSON.parse(readFileSync(copy, 'utf8')), parse(yaml('from-yaml')), 'writeContractJson: the YAML as JSON')
  const titleOf = (): string => loadContract(path, copy).document.info.title
  const rewrite = (text: string, mtime: Date): void => {
    writeFileSync(copy, text)
    utimesSync(copy, mtime, mtime)
  }
  const now = new Date()
  rewrite(JSON.stringify(parse(yaml('from-json'))), now)
  utimesSync(path, now, now)
  t.equal(titleOf(), 'from-json', 'a copy as new as the YAML is read instead of it')
  const later = new Date(now.getTime() + 60_000)
  utimesSync(path, later, later)
  t.equal(titleOf(), 'from-yaml', 'a copy older than the YAML (edited since the build) is not')
  rewrite('{"openapi": "3.1.0", "info": {"ti', later)
  t.equal(titleOf(), 'from-yaml', 'nor one that is not JSON')
  rewrite('{"hello":"world"}', later)
  t.throws(titleOf, new RegExp(`${copy} is not an OpenAPI document`), 'a fresh copy that is not a contract fails loudly, naming it')
  rewrite(JSON.stringify(parse(yaml('from-json'))), later)
  t.equal(loadContract(path, null).document.info.title, 'from-yaml', 'without a copy to look at, the YAML')
  rmSync(path)
  t.throws(titleOf, /cannot load the OpenAPI document .*c\.yaml \(it must ship next to dist\/\)/, 'the YAML must ship, copy or not')
  t.throws(() => writeContractJson(path, copy), /cannot load the OpenAPI document/)
})
