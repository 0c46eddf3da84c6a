import t from 'tap'
import { FetchError, fetchJson, isAllowedOutboundUrl } from '../src/net/fetch-json.js'
import { startJwksServer } from './helpers/jwks-server.js'

const opts = { timeoutMs: 2000, maxResponseBytes: 4096 }

async function fetchError (promise: Promise<unknown>): Promise<FetchError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof FetchError) return err
    throw err
  }
  throw new Error('expected a FetchError')
}

t.test('isAllowedOutboundUrl', async (t) => {
  const allowed = [
    'https://idp.example/jwks', 'https://idp.example:8443/a?b=c', 'http://127.0.0.1:8080/jwks', 'http://127.5.6.7/',
    'http://localhost:3000/', 'http://LOCALHOST/', 'http://[::1]:3000/jwks', 'http://127.1/'
  ]
  const refused = [
    'http://idp.example/jwks', 'http://10.0.0.1/', 'http://127.0.0.1.nip.io/', 'http://localhost.evil.example/',
    'http://128.0.0.1/', 'ftp://127.0.0.1/', 'file:///etc/passwd', 'data:application/json,{}', 'javascript:alert(1)',
    'https://user:pw@idp.example/', 'https://user@idp.example/', 'http://u:p@127.0.0.1/', 'not a url', '', '/jwks'
  ]
  for (const url of allowed) t.ok(isAllowedOutboundUrl(url), `allowed: ${url}`)
  for (const url of refused) t.notOk(isAllowedOutboundUrl(url), `refused: ${url}`)
})

t.test('fetchJson', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  t.beforeEach(() => idp.resetCounts())

  t.test('refused URLs make no request', async (t) => {
    const realFetch = globalThis.fetch
    let calls = 0
    globalThis.fetch = async (...args) => {
      calls++
      return await realFetch(...args)
    }
    t.teardown(() => { globalThis.fetch = realFetch })
    const credentials = idp.jwksUrl.replace('http://', 'http://user:secret@')
    for (const url of ['http://idp.example/jwks', credentials, 'ftp://127.0.0.1/jwks', 'nonsense']) {
      const err = await fetchError(fetchJson(url, opts))
      t.equal(err.kind, 'url_not_allowed', url)
      t.equal(err.url, url)
    }
    t.equal(calls, 0, 'fetch was never called')
    t.equal(idp.requests(), 0)
  })

  t.test('200 JSON', async (t) => {
    idp.set({ json: { keys: [{ kty: 'EC' }] }, cacheControl: 'public, max-age=300' })
    const res = await fetchJson(idp.jwksUrl, opts)
    t.same(res.body, { keys: [{ kty: 'EC' }] })
    t.equal(res.url, idp.jwksUrl)
    t.equal(res.cacheControl, 'public, max-age=300')
    t.ok(res.durationMs >= 0)
    t.equal(idp.requests('/jwks'), 1)
  })

  t.test('the Age header is returned in seconds; a malformed one is ignored', async (t) => {
    idp.set({ json: { keys: [] }, cacheControl: 'max-age=3600', headers: { age: '3500' } })
    t.equal((await fetchJson(idp.jwksUrl, opts)).ageSeconds, 3500)
    idp.set({ json: { keys: [] }, headers: { age: ' 0 ' } })
    t.equal((await fetchJson(idp.jwksUrl, opts)).ageSeconds, 0)
    for (const age of ['abc', '-1', '1.5', '10, 20', '1e3', '']) {
      idp.set({ json: { keys: [] }, headers: { age } })
      t.equal((await fetchJson(idp.jwksUrl, opts)).ageSeconds, undefined, `Age: ${JSON.stringify(age)}`)
    }
    idp.set({ json: { keys: [] } })
    t.equal((await fetchJson(idp.jwksUrl, opts)).ageSeconds, undefined, 'no Age')
  })

  t.test('any content-type is accepted when the body is JSON', async (t) => {
    idp.set({ json: { keys: [] }, contentType: 'text/plain' })
    t.same((await fetchJson(idp.jwksUrl, opts)).body, { keys: [] })
    idp.set({ json: { keys: [] }, contentType: null })
    t.same((await fetchJson(idp.jwksUrl, opts)).body, { keys: [] })
  })

  t.test('non-200 status', async (t) => {
    for (const status of [500, 404, 204, 304]) {
      idp.set({ status, body: status === 500 ? '{"secret":"do not echo"}' : '' })
      const err = await fetchError(fetchJson(idp.jwksUrl, opts))
      t.equal(err.kind, 'http_status')
      t.equal(err.message, `GET ${idp.jwksUrl} answered HTTP ${status}`)
    }
  })

  t.test('garbage body', async (t) => {
    idp.set({ body: '<html>secret-body-content</html>', contentType: 'text/html; charset=utf-8' })
    const err = await fetchError(fetchJson(idp.jwksUrl, opts))
    t.equal(err.kind, 'not_json')
    t.equal(err.message, `GET ${idp.jwksUrl}: body is not JSON (content-type text/html; charset=utf-8)`)
    t.notMatch(err.message, 'secret-body-content')
    t.equal(err.cause, undefined, 'the parser error (which quotes the body) is not kept')

    idp.set({ body: '', contentType: null })
    const empty = await fetchError(fetchJson(idp.jwksUrl, opts))
    t.equal(empty.kind, 'not_json')
    t.equal(empty.message, `GET ${idp.jwksUrl}: body is empty`)

    idp.set({ body: Buffer.from([0x7b, 0xff, 0x7d]), contentType: null })
    const binary = await fetchError(fetchJson(idp.jwksUrl, opts))
    t.match(binary.message, 'not JSON (no content-type)')
  })

  t.test('oversized body with Content-Length is refused before reading', async (t) => {
    idp.set({ body: 'x'.repeat(opts.maxResponseBytes + 1) })
    const err = await fetchError(fetchJson(idp.jwksUrl, opts))
    t.equal(err.kind, 'too_large')
    t.equal(err.message, `GET ${idp.jwksUrl}: body exceeds ${opts.maxResponseBytes} bytes (fetch.maxResponseBytes)`)
  })

  t.test('oversized body without Content-Length stops while streaming', async (t) => {
    idp.set({ json: { keys: [], pad: 'x'.repeat(opts.maxResponseBytes) }, chunked: true })
    t.equal((await fetchError(fetchJson(idp.jwksUrl, opts))).kind, 'too_large')

    // 100 MB announced by nobody, dribbled: we must stop after the limit, not at the end (or the timeout).
    // The end is 100 s away and the timeout 2 s: 'too_large' rather than 'timeout' says it stopped at the limit.
    idp.set({ body: Buffer.alloc(100 * 1024 * 1024, 0x20), dribble: { chunkBytes: 1024, intervalMs: 1 } })
    t.equal((await fetchError(fetchJson(idp.jwksUrl, opts))).kind, 'too_large', 'stopped at the limit')
  })

  t.test('exactly at the limit is fine', async (t) => {
    const body = JSON.stringify({ keys: [], pad: '' })
    const pad = 'x'.repeat(opts.maxResponseBytes - body.length)
    idp.set({ json: { keys: [], pad }, chunked: true })
    t.equal((await fetchJson(idp.jwksUrl, opts)).url, idp.jwksUrl)
  })

  // The server runs on this process's event loop: its timers and the fetch's timeout are ordered by when they
  // are due, however slow the machine. An answer due after 1 s would win over a timeout of a second or more.
  t.test('slow headers time out', async (t) => {
    idp.set({ json: { keys: [] }, delayMs: 1000 })
    const err = await fetchError(fetchJson(idp.jwksUrl, { ...opts, timeoutMs: 150 }))
    t.equal(err.kind, 'timeout', 'timed out before the headers, due 1 s after the request')
    t.equal(err.message, `GET ${idp.jwksUrl} did not complete within 150 ms (fetch.timeoutMs)`)
  })

  t.test('a dribbled body times out: the timeout covers reading the body', async (t) => {
    // About 520 bytes, 10 every 20 ms: the last is sent more than a second after the headers.
    idp.set({ json: { keys: [], pad: 'x'.repeat(500) }, dribble: { chunkBytes: 10, intervalMs: 20 } })
    const err = await fetchError(fetchJson(idp.jwksUrl, { ...opts, timeoutMs: 200 }))
    t.equal(err.kind, 'timeout', 'timed out before the end of the body')
  })

  t.test('network error names the URL', async (t) => {
    const down = await startJwksServer()
    const url = down.jwksUrl
    await down.close()
    const err = await fetchError(fetchJson(url, opts))
    t.equal(err.kind, 'network')
    t.match(err.message, `GET ${url} failed: `)
    t.equal(err.url, url)
  })

  t.test('redirects to the same host are followed', async (t) => {
    idp.set({ json: { keys: [] } })
    idp.set({ status: 301, location: '/moved' }, '/old')
    idp.set({ status: 307, location: `${idp.url}/jwks` }, '/moved')
    const res = await fetchJson(`${idp.url}/old`, opts)
    t.equal(res.url, idp.jwksUrl)
    t.same(res.body, { keys: [] })
    t.equal(idp.requests(), 3)
  })

  t.test('too many redirects', async (t) => {
    idp.set({ status: 302, location: '/loop' }, '/loop')
    const err = await fetchError(fetchJson(`${idp.url}/loop`, opts))
    t.equal(err.kind, 'redirect_not_allowed')
    t.match(err.message, 'redirected more than 3 times')
    t.equal(idp.requests('/loop'), 4)
    idp.resetCounts()
    t.equal((await fetchError(fetchJson(`${idp.url}/loop`, { ...opts, maxRedirects: 0 }))).kind, 'redirect_not_allowed')
    t.equal(idp.requests('/loop'), 1)
  })

  t.test('a redirect without Location', async (t) => {
    idp.set({ status: 302 }, '/nowhere')
    const err = await fetchError(fetchJson(`${idp.url}/nowhere`, opts))
    t.equal(err.kind, 'http_status')
    t.match(err.message, 'answered HTTP 302 without a Location header')
  })

  t.test('redirect to another host is refused without following', async (t) => {
    const target = `${idp.otherHostUrl}/jwks`
    idp.set({ status: 302, location: target }, '/elsewhere')
    const err = await fetchError(fetchJson(`${idp.url}/elsewhere`, opts))
    t.equal(err.kind, 'redirect_not_allowed')
    t.equal(err.url, `${idp.url}/elsewhere`)
    t.equal(err.message, `GET ${idp.url}/elsewhere redirected to another host ("${target}"); configure the final URL instead`)
    t.equal(idp.requests('/jwks'), 0)
  })

  t.test('redirect to another port of the same host is refused without following', async (t) => {
    const otherPort = await startJwksServer({ json: { keys: [] } })
    t.teardown(() => otherPort.close())
    t.not(new URL(otherPort.url).port, new URL(idp.url).port)
    idp.set({ status: 302, location: otherPort.jwksUrl }, '/other-port')
    const err = await fetchError(fetchJson(`${idp.url}/other-port`, opts))
    t.equal(err.kind, 'redirect_not_allowed')
    t.equal(err.url, `${idp.url}/other-port`)
    t.equal(err.message, `GET ${idp.url}/other-port redirected to another origin ("${otherPort.jwksUrl}": another port or scheme); configure the final URL instead`)
    t.equal(otherPort.requests(), 0, 'the other port was never asked')
  })

  t.test('redirect from https down to http is refused', async (t) => {
    // No TLS server here: a stub answers the https hop; the policy decides before the next request.
    const realFetch = globalThis.fetch
    const requested: string[] = []
    globalThis.fetch = async (input) => {
      requested.push(String(input))
      return new Response(null, { status: 302, headers: { location: 'http://idp.example/jwks' } })
    }
    t.teardown(() => { globalThis.fetch = realFetch })
    const err = await fetchError(fetchJson('https://idp.example/jwks', opts))
    t.equal(err.kind, 'redirect_not_allowed')
    t.match(err.message, 'GET https://idp.example/jwks redirected from https down to "http://idp.example/jwks"')
    t.same(requested, ['https://idp.example/jwks'])
  })

  t.test('redirect from https to http on loopback is refused too', async (t) => {
    const realFetch = globalThis.fetch
    let calls = 0
    globalThis.fetch = async () => {
      calls++
      return new Response(null, { status: 302, headers: { location: 'http://localhost/jwks' } })
    }
    t.teardown(() => { globalThis.fetch = realFetch })
    const err = await fetchError(fetchJson('https://localhost/jwks', opts))
    t.equal(err.kind, 'redirect_not_allowed')
    t.equal(calls, 1)
  })
})

t.test('a certificate node does not trust: the message says how to give it the CA', async (t) => {
  const { createServer } = await import('node:https')
  const { readFileSync } = await import('node:fs')
  const { makeTestPki } = await import('./helpers/certs.js')
  const pki = makeTestPki()
  t.teardown(() => pki.remove())
  const server = createServer({ cert: pki.pem.serverCert, key: readFileSync(pki.serverKey) }, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const err = await fetchJson(`https://127.0.0.1:${(server.address() as { port: number }).port}/jwks`, { timeoutMs: 2000, maxResponseBytes: 65536 }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof FetchError)
  t.match((err as FetchError).message, /\((?:UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)\); if the provider's certificate comes from a private CA or a TLS-inspecting proxy, give node that CA with NODE_EXTRA_CA_CERTS=\/path\/ca\.pem$/)
})
