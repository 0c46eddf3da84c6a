/**
 * The built-in development issuer: a tiny OpenID Provider on loopback with keys generated at start, serving
 * discovery and a JWKS, and minting ID tokens for any subject and claims. For `npm run dev` and demos only:
 * anyone who can reach it can mint tokens, so it refuses to run with NODE_ENV=production.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'

export const DEV_AUDIENCE = 'dev-client'
const TOKEN_LIFETIME_SECONDS = 3600
const MAX_BODY_BYTES = 16384
/** Claims the minting endpoint sets itself; a caller may not override them. */
const RESERVED = new Set(['iss', 'iat', 'exp', 'auth_time'])

export class DevIssuerRefused extends Error {}

/**
 * The host in the issuer URL. Bound to every interface (in the dev container) it is still named by loopback:
 * an http issuer must be a loopback URL, and that is where the service in the same container fetches keys.
 */
export function advertisedHost (bindHost: string): string {
  if (bindHost === '0.0.0.0' || bindHost === '::') return '127.0.0.1'
  return bindHost.includes(':') ? `[${bindHost}]` : bindHost // an IPv6 address, in brackets in a URL
}

export interface DevIssuer {
  issuer: string
  audience: string
  /** Mints a signed ID token; `claims` may override sub, aud, nonce and anything else but iss/iat/exp. */
  mint(claims?: Record<string, unknown>): Promise<string>
  close(): Promise<void>
}

interface SigningKey { alg: 'ES256' | 'RS256', kid: string, privateKey: CryptoKey, publicJwk: JWK }

async function makeKey (alg: 'ES256' | 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  const kid = await calculateJwkThumbprint(publicJwk)
  return { alg, kid, privateKey, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } }
}

function send (res: ServerResponse, status: number, body: unknown, contentType = 'application/json', cacheable = status === 200): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': contentType, 'cache-control': cacheable ? 'public, max-age=300' : 'no-store' })
  res.end(text)
}

async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new Error('body too large')
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('body must be a JSON object')
  return value as Record<string, unknown>
}

export async function startDevIssuer (opts: { host?: string, port?: number, env?: NodeJS.ProcessEnv } = {}): Promise<DevIssuer> {
  const env = opts.env ?? process.env
  // Any spelling of production ("Production", "prod", "production-eu", and in quotes or after an invisible character:
  // `docker run --env-file` keeps the quotes of NODE_ENV="production"): a guard that a typo disarms is none.
  if (/^prod/i.test((env.NODE_ENV ?? '').replace(/[^a-z]/gi, ''))) {
    const named = env.NODE_ENV === 'production' ? 'NODE_ENV=production' : `NODE_ENV=${JSON.stringify(env.NODE_ENV)}, which names production`
    throw new DevIssuerRefused(`The development issuer is insecure (anyone who can reach it can mint tokens) and refuses to run with ${named}.`)
  }
  const host = opts.host ?? '127.0.0.1'
  const keys = [await makeKey('ES256'), await makeKey('RS256')]
  let issuer = ''

  const mint = async (claims: Record<string, unknown> = {}): Promise<string> => {
    const alg = claims.alg === 'RS256' ? 'RS256' : 'ES256'
    const key = keys.find((k) => k.alg === alg) as SigningKey
    const now = Math.floor(Date.now() / 1000)
    const payload: Record<string, unknown> = {
      sub: 'dev-user',
      aud: DEV_AUDIENCE,
      email: `${typeof claims.sub === 'string' ? claims.sub : 'dev-user'}@example.test`,
      email_verified: true,
      name: 'Development User'
    }
    for (const [name, value] of Object.entries(claims)) if (!RESERVED.has(name) && name !== 'alg') payload[name] = value
    return await new SignJWT(payload)
      .setProtectedHeader({ alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + TOKEN_LIFETIME_SECONDS)
      .sign(key.privateKey)
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      // Parsed in here: a request target that is no URL ("//[") throws, and is then a 400, not an uncaught exception.
      const url = new URL(req.url ?? '/', issuer)
      switch (`${req.method ?? 'GET'} ${url.pathname}`) {
        case 'GET /.well-known/openid-configuration':
          return send(res, 200, {
            issuer,
            jwks_uri: `${issuer}/jwks`,
            authorization_endpoint: `${issuer}/authorize-not-supported`,
            response_types_supported: ['id_token'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: keys.map((k) => k.alg)
          })
        case 'GET /jwks':
          return send(res, 200, { keys: keys.map((k) => k.publicJwk) })
        case 'GET /token': {
          const claims: Record<string, unknown> = {}
          for (const [name, value] of url.searchParams) claims[name] = value
          return send(res, 200, await mint(claims), 'text/plain', false) // a token: never cached (RFC 6749 §5.1)
        }
        case 'POST /token':
          return send(res, 200, await mint(await readJson(req)), 'text/plain', false)
        default:
          return send(res, 404, { error: 'not_found', routes: ['GET /.well-known/openid-configuration', 'GET /jwks', 'GET /token?sub=…', 'POST /token {claims}'] })
      }
    })().catch((err: unknown) => send(res, 400, { error: 'bad_request', message: (err as Error).message }))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  issuer = `http://${advertisedHost(host)}:${port}`

  return {
    issuer,
    audience: DEV_AUDIENCE,
    mint,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Nothing here is worth waiting for (a mint takes milliseconds): a client that never finishes its request
      // would hold the stop for the whole grace period.
      server.closeAllConnections()
      await closed
    }
  }
}
