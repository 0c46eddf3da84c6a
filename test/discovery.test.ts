import t from 'tap'
import { DiscoveryError, discoverJwksUri, discoveryUrl, MAX_JWKS_URI_CHARS } from '../src/jwks/discovery.js'
import { FetchError, type FetchJson, type FetchJsonOptions, type FetchJsonResult } from '../src/net/fetch-json.js'
import { startJwksServer } from './helpers/jwks-server.js'

const fetchOpts = { timeoutMs: 2000, maxResponseBytes: 65536 }
const WELL_KNOWN = '/.well-known/openid-configuration'

async function discoveryError (promise: Promise<unknown>): Promise<DiscoveryError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof DiscoveryError) return err
    throw err
  }
  throw new Error('expected a DiscoveryError')
}

t.test('discoveryUrl removes a terminating slash before appending the well-known path', async (t) => {
  t.equal(discoveryUrl('https://idp.example'), 'https://idp.example/.well-known/openid-configuration')
  t.equal(discoveryUrl('https://idp.example/'), 'https://idp.example/.well-known/openid-configuration')
  t.equal(discoveryUrl('https://idp.example/tenant/v2.0/'), 'https://idp.example/tenant/v2.0/.well-known/openid-configuration')
})

t.test('discovery against a server', async (t) => {
  const idp = await startJwksServer()
  t.teardown(() => idp.close())
  t.beforeEach(() => idp.resetCounts())
  const serve = (metadata: unknown, path = WELL_KNOWN): void => idp.set({ json: metadata }, path)

  t.test('good discovery', async (t) => {
    serve({ issuer: idp.url, jwks_uri: idp.jwksUrl, id_token_signing_alg_values_supported: ['RS256'] })
    const found = await discoverJwksUri(idp.url, fetchOpts)
    t.equal(found.jwksUri, idp.jwksUrl)
    t.same(found.metadata.id_token_signing_alg_values_supported, ['RS256'])
    t.equal(idp.requests(WELL_KNOWN), 1)
  })

  t.test('trailing-slash issuer: same URL, but the document must name the slash too', async (t) => {
    const issuer = `${idp.url}/`
    serve({ issuer, jwks_uri: idp.jwksUrl })
    t.equal((await discoverJwksUri(issuer, fetchOpts)).jwksUri, idp.jwksUrl)
    t.equal(idp.requests(WELL_KNOWN), 1)

    const err = await discoveryError(discoverJwksUri(idp.url, fetchOpts))
    t.match(err.message, `names issuer "${issuer}", expected exactly "${idp.url}"`)
  })

  t.test('issuer with a path', async (t) => {
    const issuer = `${idp.url}/tenant/v2.0`
    serve({ issuer, jwks_uri: idp.jwksUrl }, `/tenant/v2.0${WELL_KNOWN}`)
    t.equal((await discoverJwksUri(issuer, fetchOpts)).jwksUri, idp.jwksUrl)
  })

  t.test('issuer mismatch says what was expected and what was found', async (t) => {
    serve({ issuer: 'https://evil.example', jwks_uri: idp.jwksUrl })
    const err = await discoveryError(discoverJwksUri(idp.url, fetchOpts))
    t.equal(err.issuer, idp.url)
    t.equal(err.message,
      `Discovery for issuer ${idp.url} failed: the metadata at ${idp.url}${WELL_KNOWN} names issuer ` +
      `"https://evil.example", expected exactly "${idp.url}" (the configured issuer must match the provider's, ` +
      'including scheme and trailing slash)')

    serve({ jwks_uri: idp.jwksUrl })
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message, 'names issuer no value, expected exactly')
    serve({ issuer: 'x'.repeat(5000), jwks_uri: idp.jwksUrl })
    t.ok((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message.length < 600, 'found value is truncated')
  })

  t.test('missing or invalid jwks_uri', async (t) => {
    serve({ issuer: idp.url })
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message,
      'has no "jwks_uri" string (found no value)')
    serve({ issuer: idp.url, jwks_uri: 42 })
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message, 'has no "jwks_uri" string (found 42)')
    // One character past the bound is refused, naming its length; the bound itself is taken.
    const longUri = (n: number): string => `${idp.jwksUrl}?${'p'.repeat(n - idp.jwksUrl.length - 1)}`
    serve({ issuer: idp.url, jwks_uri: longUri(MAX_JWKS_URI_CHARS + 1) })
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message,
      `has a "jwks_uri" of ${MAX_JWKS_URI_CHARS + 1} characters`)
    serve({ issuer: idp.url, jwks_uri: longUri(MAX_JWKS_URI_CHARS) })
    t.equal((await discoverJwksUri(idp.url, fetchOpts)).jwksUri.length, MAX_JWKS_URI_CHARS, 'a jwks_uri of the bound\'s length is taken')
    for (const bad of ['http://idp.example/jwks', 'ftp://127.0.0.1/jwks', 'https://u:p@idp.example/jwks', 'relative/jwks']) {
      serve({ issuer: idp.url, jwks_uri: bad })
      const err = await discoveryError(discoverJwksUri(idp.url, fetchOpts))
      t.match(err.message, `has a "jwks_uri" that is not allowed (${JSON.stringify(bad)}): it must be https`, bad)
    }
  })

  t.test('a jwks_uri may not downgrade to http, nor lead from a remote host to this one', async (t) => {
    const issuer = 'https://idp.example.com'
    const named = (jwksUri: string): FetchJson => async (url) => ({ url, body: { issuer, jwks_uri: jwksUri }, durationMs: 1 })
    const refused: Array<[string, string]> = [
      ['http://127.0.0.1:6379/', 'it must be https: the document was fetched over https'],
      ['http://localhost:8080/admin', 'it must be https: the document was fetched over https'],
      ['https://127.0.0.1:6379/jwks', 'it names a loopback host, and the document does not come from one'],
      ['https://127.8.9.10/jwks', 'it names a loopback host, and the document does not come from one'],
      ['https://[::1]:8443/jwks', 'it names a loopback host, and the document does not come from one'],
      ['https://localhost/jwks', 'it names a loopback host, and the document does not come from one'],
      // What connects here too, or resolves here by convention.
      ...['https://0.0.0.0:6379/', 'https://0:6379/', 'https://0.1.2.3/', 'https://[::]:6379/', 'https://[::ffff:127.0.0.1]:6379/', 'https://[::ffff:0.0.0.0]/',
        'https://localhost.:6379/', 'https://keys.localhost/', 'https://0x7f000001/', 'https://2130706433/', 'https://127.1/', 'https://[0:0:0:0:0:0:0:1]/']
        .map((url): [string, string] => [url, 'it names a loopback host, and the document does not come from one'])
    ]
    // Link-local addresses and instance-metadata endpoints, in every spelling the URL parser reads as one.
    const metadata = 'it names a link-local address or a cloud\'s instance-metadata endpoint, and the document does not come from one'
    for (const url of ['https://169.254.169.254/latest/meta-data/', 'https://0xa9fea9fe/', 'https://2852039166/', 'https://169.254.1/',
      'https://[::ffff:169.254.169.254]/', 'https://[fe80::1]/', 'https://[FEBF::a:b]:8443/', 'https://[fd00:ec2::254]/latest/',
      'https://100.100.100.200/latest/meta-data/', 'https://metadata.google.internal/computeMetadata/v1/', 'https://METADATA.google.internal./',
      // IPv6 forms the URL parser writes in hex: IPv4-mapped (a dual-stack socket connects over IPv4) and IPv4-compatible.
      'https://[::ffff:100.100.100.200]/latest/meta-data/', 'https://[::ffff:6464:64c8]/', 'https://[::100.100.100.200]/',
      'https://[::169.254.169.254]/latest/meta-data/', 'https://[::a9fe:a9fe]/',
      // The NAT64 well-known prefix (a gateway connects over IPv4), and Google's short name.
      'https://[64:ff9b::169.254.169.254]/latest/meta-data/', 'https://[64:ff9b::100.100.100.200]/', 'https://metadata/computeMetadata/v1/', 'https://Metadata./']) {
      refused.push([url, metadata])
    }
    for (const [jwksUri, why] of refused) {
      const err = await discoveryError(discoverJwksUri(issuer, fetchOpts, named(jwksUri)))
      t.match(err.message, `has a "jwks_uri" that is not allowed (${JSON.stringify(jwksUri)}): ${why}`, jwksUri)
    }
    t.equal((await discoverJwksUri(issuer, fetchOpts, named('https://keys.idp.example.com/jwks'))).jwksUri, 'https://keys.idp.example.com/jwks', 'another https host')
    for (const elsewhere of ['https://[::ffff:7.240.0.1]/jwks', 'https://[::ffff:6464:64c9]/jwks', 'https://[::a9ff:1]/jwks', 'https://[::ffff:128.0.0.1]/jwks', 'https://169.253.255.255/jwks', 'https://[fe8::1]/jwks',
      'https://[fec0::1]/jwks', 'https://[fd00:ec2::255]/jwks', 'https://metadata.google.internal.example.com/jwks', 'https://metadata.example.com/jwks', 'https://[64:ff9b::a9ff:1]/jwks', 'https://[64:ff9b::6464:64c9]/jwks', 'https://169.254.169.254.example.com/jwks']) {
      t.equal((await discoverJwksUri(issuer, fetchOpts, named(elsewhere))).jwksUri, elsewhere, `${elsewhere} is not this host`)
    }
    const zeroNet = await discoveryError(discoverJwksUri(issuer, fetchOpts, named('https://[::ffff:0.1.0.1]/jwks')))
    t.match(zeroNet.message, 'it names a loopback host', '0.1.0.1, mapped')
    // A development provider on this host (http, loopback) may name a key set on this host, or an https one.
    const local = 'http://127.0.0.1:9000'
    const localNamed = (jwksUri: string): FetchJson => async (url) => ({ url, body: { issuer: local, jwks_uri: jwksUri }, durationMs: 1 })
    t.equal((await discoverJwksUri(local, fetchOpts, localNamed('http://127.0.0.1:9001/jwks'))).jwksUri, 'http://127.0.0.1:9001/jwks')
    t.equal((await discoverJwksUri(local, fetchOpts, localNamed('https://keys.example.com/jwks'))).jwksUri, 'https://keys.example.com/jwks')
    // Configured URLs are the operator's: only a URL a document names is held to this.
    const onMetadata = 'https://169.254.10.10'
    const metadataNamed = (jwksUri: string): FetchJson => async (url) => ({ url, body: { issuer: onMetadata, jwks_uri: jwksUri }, durationMs: 1 })
    t.equal((await discoverJwksUri(onMetadata, fetchOpts, metadataNamed('https://169.254.10.10/jwks'))).jwksUri, 'https://169.254.10.10/jwks',
      'a provider configured on a link-local address may name its key set there')
  })

  t.test('a value nested too deep to quote still gives a DiscoveryError that names the member', async (t) => {
    const deep = '['.repeat(10000) + ']'.repeat(10000)
    idp.set({ body: `{"issuer":${deep},"jwks_uri":${JSON.stringify(idp.jwksUrl)}}` }, WELL_KNOWN)
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message,
      `the metadata at ${idp.url}${WELL_KNOWN} names issuer an array nested too deep to quote, expected exactly "${idp.url}"`)
    idp.set({ body: `{"issuer":${JSON.stringify(idp.url)},"jwks_uri":{"a":${deep}}}` }, WELL_KNOWN)
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message,
      'has no "jwks_uri" string (found an object nested too deep to quote)')
  })

  t.test('metadata that is not an object', async (t) => {
    serve([{ issuer: idp.url }])
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message, 'is not a JSON object')
  })

  t.test('fetch failures are rethrown with the fetch error message and cause', async (t) => {
    idp.set({ status: 500 }, WELL_KNOWN)
    const err = await discoveryError(discoverJwksUri(idp.url, fetchOpts))
    t.equal(err.message, `Discovery for issuer ${idp.url} failed: GET ${idp.url}${WELL_KNOWN} answered HTTP 500`)
    t.ok(err.cause instanceof FetchError)

    idp.set({ body: '<html>', contentType: 'text/html' }, WELL_KNOWN)
    t.match((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message, 'is not JSON (content-type text/html)')

    idp.set({ status: 404 }, WELL_KNOWN)
    t.equal((await discoveryError(discoverJwksUri(idp.url, fetchOpts))).message,
      `Discovery for issuer ${idp.url} failed: GET ${idp.url}${WELL_KNOWN} answered HTTP 404 (check the issuer's path, e.g. /v2.0, /realms/NAME or /oauth2/default, or set discoveryUrl or jwksUri)`,
      'a 404: most often an issuer URL without its path')
  })

  t.test('a non-https issuer is refused before any I/O', async (t) => {
    const err = await discoveryError(discoverJwksUri('http://idp.example', fetchOpts))
    t.equal((err.cause as FetchError).kind, 'url_not_allowed')
    t.equal(idp.requests(), 0)
  })
})

t.test('the fetcher is injectable', async (t) => {
  const calls: Array<[string, FetchJsonOptions]> = []
  const fetcher = async (url: string, opts: FetchJsonOptions): Promise<FetchJsonResult> => {
    calls.push([url, opts])
    return { url, body: { issuer: 'https://idp.example/', jwks_uri: 'https://keys.idp.example/jwks' }, durationMs: 1 }
  }
  const found = await discoverJwksUri('https://idp.example/', fetchOpts, fetcher)
  t.equal(found.jwksUri, 'https://keys.idp.example/jwks', 'jwks_uri may be on another host')
  t.same(calls, [['https://idp.example/.well-known/openid-configuration', fetchOpts]])
})
