// The OpenID Provider stand-in: discovery and JWKS on 127.0.0.1, counting every fetch, so the benchmark
// can report how often each verifier goes back to the IdP. Runs inside the orchestrator (pinned with the
// load generator, away from the target's core).
import http from 'node:http'
import { publicJwks } from './keys.mjs'

/** Starts the IdP; resolves to { issuer, jwksUri, counts(), reset(), close() }. */
export async function startIdp (keySet) {
  const jwksBody = Buffer.from(JSON.stringify(publicJwks(keySet)))
  const counts = { jwks: 0, discovery: 0, other: 0 }
  let discoveryBody = Buffer.alloc(0)

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    let body
    if (req.method === 'GET' && path === '/jwks') {
      counts.jwks++
      body = jwksBody
    } else if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      counts.discovery++
      body = discoveryBody
    } else {
      counts.other++
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}')
      return
    }
    // One hour, as many IdPs send: any re-fetch seen during a run is the verifier's own decision.
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'public, max-age=3600' })
    res.end(body)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const issuer = `http://127.0.0.1:${server.address().port}`
  const jwksUri = `${issuer}/jwks`
  discoveryBody = Buffer.from(JSON.stringify({
    issuer,
    jwks_uri: jwksUri,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: Object.keys(keySet)
  }))
  return {
    issuer,
    jwksUri,
    counts: () => ({ ...counts }),
    reset: () => { counts.jwks = counts.discovery = counts.other = 0 },
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections() })
  }
}
