/**
 * Test harness: a REAL OpenID Provider (npm `oidc-provider` 8.x) on 127.0.0.1.
 *
 * - One node:http server; requests under /interaction/ are handled here (a minimal
 *   login + consent UI driven by `interactionDetails` / `interactionFinished`), everything
 *   else goes to the current Provider instance's Koa callback.
 * - `rotate()` (and new per-login claim names) build a NEW Provider instance behind the same
 *   server/port/issuer. State (sessions, grants, codes) lives in a harness-owned adapter and the
 *   cookie keys are kept, so in-flight logins survive the swap.
 * - No dev interactions, dev keys, default adapter or default helpers are used, so the
 *   provider prints no development warnings.
 * - Logout: `login()` returns the browser session (its cookie jar); `logout(session)` drives the real
 *   RP-initiated logout (GET /session/end, then POST of its confirm form). With `features.backchannelLogout`
 *   (StartOptions.backchannelLogout, or any client with a backchannel_logout_uri) the provider itself POSTs a
 *   logout token to every logged-out client's backchannel_logout_uri, and awaits those POSTs before it answers;
 *   their outcomes (the provider's backchannel.success / backchannel.error events) are in `backchannelEvents`.
 */
import { randomBytes, createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generatePair } from './tokens.js'

export type OpAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA'
export const OP_ALGS: readonly OpAlg[] = ['RS256', 'PS256', 'ES256', 'EdDSA']

export interface OpClient {
  clientId: string
  clientSecret: string
  alg: OpAlg
  redirectUri: string
  /** ID tokens for this client are encrypted (signed, then encrypted to the client's public key). */
  idTokenEncryption?: IdTokenEncryption
  /** backchannel_logout_uri: where the provider POSTs logout tokens (see StartedOp.setBackchannelLogout) */
  backchannelLogoutUri?: string
  /**
   * backchannel_logout_session_required: logout tokens carry `sid`, and so do this client's ID tokens
   * (oidc-provider adds sid to ID tokens of a client with a backchannel_logout_uri and this flag).
   */
  backchannelLogoutSessionRequired?: boolean
}

/** Back-channel logout options of a client. */
export interface BackchannelLogoutClient {
  /** undefined: no back-channel logout for this client */
  uri: string | undefined
  /** default false: logout tokens (and ID tokens) without sid */
  sessionRequired?: boolean
}

export interface IdTokenEncryption {
  /** id_token_encrypted_response_alg, e.g. RSA-OAEP-256, ECDH-ES */
  alg: string
  /** id_token_encrypted_response_enc, e.g. A256GCM */
  enc: string
  /** the client's PUBLIC encryption keys (the provider encrypts to them) */
  jwks: { keys: Array<Record<string, unknown>> }
}

export interface LoginOptions {
  clientId: string
  /** account id / `sub`; default `alice`. Unknown subs get a synthesized profile. */
  sub?: string
  /** default: a random nonce; `null` sends no nonce (the ID token then has none) */
  nonce?: string | null
  /** sent as `max_age`; the ID token then carries `auth_time` */
  maxAge?: number
  /** extra/overriding claims for this login's ID token (any JSON value; `sub` and JWT-reserved names are rejected) */
  claims?: Record<string, unknown>
  /** default `openid email profile` */
  scope?: string
  /**
   * Log in with this browser session (from an earlier login()): the provider's session cookie is sent, so
   * no login prompt is shown (SSO) and the ID token gets this session's sid. Default: a new browser.
   * `sub` defaults to the session's. Per-login `claims` only apply when a consent prompt is shown (the first
   * login of this client in the session).
   */
  session?: OpSession
}

export interface LoginResult {
  idToken: string
  accessToken?: string
  /** the nonce sent in the authorization request (undefined when `nonce: null`) */
  nonce?: string
  /** the browser session (cookie jar) that logged in: for logout() and login({ session }) */
  session: OpSession
}

/** A browser's session at the provider (its cookie jar). Opaque; made by login(). */
export interface OpSession {
  /** the account logged in through this browser */
  readonly sub: string
  /** the Cookie header this browser sends to `pathname` at the provider (undefined: none) */
  cookieHeader(pathname: string): string | undefined
}

export interface LogoutOptions {
  /** id_token_hint: names the client (and is validated by the provider) */
  idTokenHint?: string
  /** client_id parameter (names the client without an id_token_hint) */
  clientId?: string
  /**
   * true (default): the user confirms "log out of everything" (logout=yes): the provider ends the session and
   * notifies every client of it. false: only the client named by idTokenHint/clientId is logged out (and
   * notified); the session stays.
   */
  everywhere?: boolean
}

export interface LogoutResult {
  /** the back-channel notifications the provider made during this logout (also in StartedOp.backchannelEvents) */
  backchannel: BackchannelEvent[]
  /** the provider's final redirect (absolute URL; /session/end/success without post_logout_redirect_uri) */
  location: string
}

/** One back-channel logout notification, from the provider's backchannel.success / backchannel.error events. */
export interface BackchannelEvent {
  outcome: 'success' | 'error'
  clientId: string
  /** the sub of the logged-out account */
  accountId: string
  /** the session's sid for this client (the logout token carries it only with backchannelLogoutSessionRequired) */
  sid: string | undefined
  /** outcome error: the provider's error message (e.g. `expected 200 OK from …, got: 400 Bad Request`) */
  error?: string
  /** outcome error with an HTTP answer: its status */
  statusCode?: number
}

export interface StartedOp {
  /** http://127.0.0.1:PORT (no trailing slash) */
  issuer: string
  port: number
  clients: OpClient[]
  /** public JWKS the provider publishes right now (getter; changes after rotate()) */
  readonly jwks: { keys: Array<Record<string, unknown>> }
  /** kid currently used to sign ID tokens for each alg (getter) */
  readonly currentKids: Record<OpAlg, string>
  client(alg: OpAlg): OpClient
  login(opts: LoginOptions): Promise<LoginResult>
  /**
   * RP-initiated logout of a browser session (from login()), through the provider's end_session_endpoint:
   * GET /session/end with the session's cookies, then POST of the confirmation form (xsrf, logout=yes).
   * Resolves after the provider finished, i.e. after its back-channel logout POSTs were answered.
   */
  logout(session: OpSession, opts?: LogoutOptions): Promise<LogoutResult>
  /** every back-channel logout notification so far, oldest first (getter) */
  readonly backchannelEvents: readonly BackchannelEvent[]
  /**
   * Sets (or removes, uri undefined) a client's backchannel_logout_uri, e.g. once the RP listens on a port.
   * Builds a new Provider instance behind the same server (sessions, grants and keys are kept).
   */
  setBackchannelLogout(clientId: string, client: BackchannelLogoutClient): Promise<void>
  /** sign with NEW keys (every alg) from now on; old keys stay published. Same issuer/port. */
  rotate(): Promise<void>
  close(): Promise<void>
}

export interface StartOptions {
  /** default 0 (ephemeral) */
  port?: number
  /** default: one client per alg, `client-rs256`, `client-ps256`, `client-es256`, `client-eddsa` */
  clients?: Array<{
    alg: OpAlg, clientId?: string, clientSecret?: string, redirectUri?: string, idTokenEncryption?: IdTokenEncryption,
    backchannelLogoutUri?: string, backchannelLogoutSessionRequired?: boolean
  }>
  /** sub -> claims (merged over the synthesized default profile) */
  accounts?: Record<string, Record<string, unknown>>
  /** ID token lifetime in seconds (default 3600) */
  idTokenTtl?: number
  /**
   * features.backchannelLogout (OpenID Connect Back-Channel Logout 1.0). Default: on when a client has a
   * backchannel_logout_uri at start. rpInitiatedLogout (the end_session_endpoint) is always on.
   */
  backchannelLogout?: boolean
}

// ---------------------------------------------------------------------------------------------
// small public helpers

export function decodeJwtPart(token: string, part: 0 | 1): Record<string, unknown> {
  const segment = token.split('.')[part]
  if (segment === undefined) throw new Error('not a compact JWS')
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>
}

export function defaultProfile(sub: string): Record<string, unknown> {
  const given = sub.charAt(0).toUpperCase() + sub.slice(1)
  return {
    email: `${sub}@example.test`,
    email_verified: true,
    name: `${given} Example`,
    given_name: given,
    family_name: 'Example',
    picture: `https://example.test/avatars/${encodeURIComponent(sub)}.png`,
    locale: 'en-US'
  }
}

// ---------------------------------------------------------------------------------------------
// minimal typing of the bits of oidc-provider we use (the package ships no types and
// @types/oidc-provider is not a devDependency)

interface ProviderGrant {
  addOIDCScope(scope: string): void
  addOIDCClaims(claims: string[]): void
  addResourceScope(indicator: string, scope: string): void
  save(): Promise<string>
}
interface ProviderGrantCtor {
  new (init: { accountId: string, clientId: string }): ProviderGrant
  find(id: string): Promise<ProviderGrant | undefined>
}
interface InteractionDetails {
  uid: string
  prompt: { name: string, reasons: string[], details: Record<string, unknown> }
  params: Record<string, unknown>
  session?: { accountId?: string }
  grantId?: string
}
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => unknown
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>,
    opts?: { mergeWithLastSubmission?: boolean }): Promise<void>
  Grant: ProviderGrantCtor
  on(event: string, listener: (...args: unknown[]) => void): unknown
}
interface ProviderClient { clientId: string }
type ProviderCtor = new (issuer: string, config: Record<string, unknown>) => ProviderInstance

let providerCtor: ProviderCtor | undefined
async function loadProvider(): Promise<ProviderCtor> {
  if (providerCtor === undefined) {
    const specifier: string = 'oidc-provider' // non-literal: the package has no type declarations
    const mod = (await import(specifier)) as { default: ProviderCtor }
    providerCtor = mod.default
  }
  return providerCtor
}

// ---------------------------------------------------------------------------------------------
// keys

type PrivateJwk = Record<string, unknown> & { kid: string, alg: OpAlg }

function generateSigningKey(alg: OpAlg, generation: number): PrivateJwk {
  const pair = alg === 'ES256'
    ? generatePair('ec', { namedCurve: 'P-256' })
    : alg === 'EdDSA' ? generatePair('ed25519') : generatePair('rsa', { modulusLength: 2048 })
  const jwk = pair.privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  const kid = `${alg.toLowerCase()}-g${generation}-${randomBytes(4).toString('hex')}`
  return { ...jwk, kid, alg, use: 'sig' }
}

function generateKeySet(generation: number): PrivateJwk[] {
  return OP_ALGS.map((alg) => generateSigningKey(alg, generation))
}

const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi'])
function toPublicJwk(jwk: PrivateJwk): Record<string, unknown> {
  return Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.has(k)))
}

// ---------------------------------------------------------------------------------------------
// storage adapter (harness-owned so it survives provider swaps; no timers)

interface StoredEntry { payload: Record<string, unknown>, expiresAt?: number }

function createAdapterClass(store: Map<string, StoredEntry>) {
  const now = (): number => Math.floor(Date.now() / 1000)
  const get = (key: string): StoredEntry | undefined => {
    const entry = store.get(key)
    if (entry?.expiresAt !== undefined && entry.expiresAt <= now()) {
      store.delete(key)
      return undefined
    }
    return entry
  }
  const set = (key: string, payload: Record<string, unknown>, expiresIn?: number): void => {
    store.set(key, { payload, ...(expiresIn ? { expiresAt: now() + expiresIn } : {}) })
  }
  const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
    'BackchannelAuthenticationRequest'])

  return class HarnessAdapter {
    readonly #model: string
    constructor(model: string) { this.#model = model }
    #key(id: string): string { return `${this.#model}:${id}` }

    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      const key = this.#key(id)
      if (this.#model === 'Session' && typeof payload.uid === 'string') {
        set(`sessionUid:${payload.uid}`, { id }, expiresIn)
      }
      if (grantable.has(this.#model) && typeof payload.grantId === 'string') {
        const gk = `grant:${payload.grantId}`
        const existing = get(gk)
        const keys = Array.isArray(existing?.payload.keys) ? existing.payload.keys as string[] : []
        set(gk, { keys: [...keys, key] })
      }
      if (typeof payload.userCode === 'string') set(`userCode:${payload.userCode}`, { id }, expiresIn)
      set(key, payload, expiresIn)
    }

    async find(id: string): Promise<Record<string, unknown> | undefined> {
      return get(this.#key(id))?.payload
    }

    async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      const ref = get(`sessionUid:${uid}`)?.payload.id
      return typeof ref === 'string' ? this.find(ref) : undefined
    }

    async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
      const ref = get(`userCode:${userCode}`)?.payload.id
      return typeof ref === 'string' ? this.find(ref) : undefined
    }

    async consume(id: string): Promise<void> {
      const entry = get(this.#key(id))
      if (entry) entry.payload.consumed = now()
    }

    async destroy(id: string): Promise<void> {
      store.delete(this.#key(id))
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const gk = `grant:${grantId}`
      const keys = get(gk)?.payload.keys
      if (Array.isArray(keys)) for (const k of keys) store.delete(String(k))
      store.delete(gk)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// claims configuration

const STANDARD_SCOPE_CLAIMS: Record<string, string[]> = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username',
    'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  address: ['address'],
  phone: ['phone_number', 'phone_number_verified']
}
const KNOWN_CLAIMS = new Set(Object.values(STANDARD_SCOPE_CLAIMS).flat())
/** names the provider/JWT layer sets itself; per-login overrides are rejected */
const RESERVED_CLAIMS = new Set(['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'jti', 'nonce', 'azp',
  'at_hash', 'c_hash', 's_hash', 'sid', 'auth_time', 'acr', 'amr', 'cnf', 'scope', 'client_id'])

// ---------------------------------------------------------------------------------------------
// tiny cookie jar (path-aware, enough for oidc-provider's signed cookies)

interface JarCookie { name: string, value: string, path: string }

class CookieJar {
  readonly #cookies = new Map<string, JarCookie>()

  store(setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';')
      const eq = pair.indexOf('=')
      if (eq <= 0) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      let path = '/'
      let expired = value === ''
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((s) => s.trim())
        const lk = k.toLowerCase()
        if (lk === 'path' && v.startsWith('/')) path = v
        if (lk === 'max-age' && Number(v) <= 0) expired = true
        if (lk === 'expires' && Date.parse(v) <= Date.now()) expired = true
      }
      const key = `${name};${path}`
      if (expired) this.#cookies.delete(key)
      else this.#cookies.set(key, { name, value, path })
    }
  }

  header(pathname: string): string | undefined {
    const matching = [...this.#cookies.values()].filter((c) => pathname === c.path ||
      (pathname.startsWith(c.path) && (c.path.endsWith('/') || pathname.charAt(c.path.length) === '/')))
    matching.sort((a, b) => b.path.length - a.path.length)
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined
  }
}

class BrowserSession implements OpSession {
  readonly jar = new CookieJar()
  readonly sub: string
  constructor(sub: string) { this.sub = sub }
  cookieHeader(pathname: string): string | undefined { return this.jar.header(pathname) }
}

interface BrowserRequestInit { method?: string, form?: Record<string, string>, headers?: Record<string, string> }

/** One request of the browser: its cookies sent and stored, no redirect followed. */
async function browserRequest(jar: CookieJar, url: URL, init: BrowserRequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', ...init.headers }
  const cookie = jar.header(url.pathname)
  if (cookie) headers.cookie = cookie
  let body: string | undefined
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(init.form).toString()
  }
  const res = await fetch(url, { method: init.method ?? 'GET', headers, body, redirect: 'manual' })
  jar.store(res.headers.getSetCookie())
  return res
}

function htmlUnescape(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) =>
    ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" } as Record<string, string>)[e] as string)
}

/** The first form of an HTML page: its action and hidden inputs (enough for oidc-provider's logout pages). */
function parseHtmlForm(html: string): { action: string, fields: Record<string, string> } | undefined {
  const form = /<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html)
  if (form === null) return undefined
  const fields: Record<string, string> = {}
  for (const input of (form[2] ?? '').matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname="([^"]*)"/.exec(input[0])?.[1]
    const value = /\bvalue="([^"]*)"/.exec(input[0])?.[1]
    if (name !== undefined) fields[htmlUnescape(name)] = htmlUnescape(value ?? '')
  }
  return { action: htmlUnescape(form[1] ?? ''), fields }
}

// ---------------------------------------------------------------------------------------------

function randomToken(): string {
  return randomBytes(16).toString('base64url')
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(text)
}

interface PendingLogin { claims: Record<string, unknown> }

export async function startOidcProvider(opts: StartOptions = {}): Promise<StartedOp> {
  const Provider = await loadProvider()

  const clientSpecs: NonNullable<StartOptions['clients']> = opts.clients ?? OP_ALGS.map((alg) => ({ alg }))
  const clients: OpClient[] = clientSpecs.map((c) => ({
    alg: c.alg,
    clientId: c.clientId ?? `client-${c.alg.toLowerCase()}`,
    clientSecret: c.clientSecret ?? randomBytes(24).toString('base64url'),
    redirectUri: c.redirectUri ?? `https://rp.example.test/callback/${c.clientId ?? c.alg.toLowerCase()}`,
    ...(c.idTokenEncryption !== undefined ? { idTokenEncryption: c.idTokenEncryption } : {}),
    ...(c.backchannelLogoutUri !== undefined ? { backchannelLogoutUri: c.backchannelLogoutUri } : {}),
    ...(c.backchannelLogoutSessionRequired !== undefined ? { backchannelLogoutSessionRequired: c.backchannelLogoutSessionRequired } : {})
  }))
  const backchannelLogout = opts.backchannelLogout ?? clients.some((c) => c.backchannelLogoutUri !== undefined)
  const backchannelEvents: BackchannelEvent[] = []
  const encrypting = clients.filter((c) => c.idTokenEncryption !== undefined)
  const accounts = new Map(Object.entries(opts.accounts ?? {}))
  const store = new Map<string, StoredEntry>()
  const Adapter = createAdapterClass(store)
  const cookieKeys = [randomBytes(32).toString('base64url')]
  const pendingLogins = new Map<string, PendingLogin>()
  const grantClaims = new Map<string, Record<string, unknown>>()
  const extraClaimNames = new Set<string>()
  const serverErrors: string[] = []

  let generation = 1
  // signing order: newest first (oidc-provider signs with the first matching key)
  let keys: PrivateJwk[] = generateKeySet(generation)
  let provider: ProviderInstance | undefined
  let handler: ((req: IncomingMessage, res: ServerResponse) => unknown) | undefined

  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/'
    if (url.startsWith('/interaction/')) {
      handleInteraction(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 400, { error: 'interaction_failed', error_description: String(err) })
        else res.end()
      })
      return
    }
    if (handler === undefined) {
      sendJson(res, 503, { error: 'not_ready' })
      return
    }
    void handler(req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const issuer = `http://127.0.0.1:${port}`

  function buildProvider(): void {
    const openidClaims = ['sub', ...extraClaimNames]
    const next = new Provider(issuer, {
      adapter: Adapter,
      clients: clients.map((c) => ({
        client_id: c.clientId,
        client_secret: c.clientSecret,
        redirect_uris: [c.redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: c.alg,
        ...(c.backchannelLogoutUri !== undefined
          ? {
              backchannel_logout_uri: c.backchannelLogoutUri,
              backchannel_logout_session_required: c.backchannelLogoutSessionRequired ?? false
            }
          : {}),
        ...(c.idTokenEncryption !== undefined
          ? {
              id_token_encrypted_response_alg: c.idTokenEncryption.alg,
              id_token_encrypted_response_enc: c.idTokenEncryption.enc,
              jwks: c.idTokenEncryption.jwks
            }
          : {})
      })),
      jwks: { keys: keys.map((k) => ({ ...k })) },
      cookies: { keys: cookieKeys },
      claims: { ...STANDARD_SCOPE_CLAIMS, openid: openidClaims },
      scopes: ['openid', 'email', 'profile', 'address', 'phone'],
      conformIdTokenClaims: false, // put scope claims (email, name, ...) in the ID token, like Google etc.
      features: {
        devInteractions: { enabled: false },
        encryption: { enabled: encrypting.length > 0 },
        backchannelLogout: { enabled: backchannelLogout },
        rpInitiatedLogout: {
          enabled: true,
          // own pages (the defaults print a development notice): the confirm form as is, then JSON
          logoutSource: async (ctx: { type: string, body: unknown }, form: string) => {
            ctx.type = 'html'
            ctx.body = `<!DOCTYPE html><html><head><title>Logout</title></head><body>${form}</body></html>`
          },
          postLogoutSuccessSource: async (ctx: { type: string, body: unknown }) => {
            ctx.type = 'json'
            ctx.body = { logged_out: true }
          }
        }
      },
      ...(encrypting.length > 0
        ? {
            enabledJWA: {
              idTokenEncryptionAlgValues: [...new Set(encrypting.map((c) => c.idTokenEncryption?.alg as string))],
              idTokenEncryptionEncValues: [...new Set(encrypting.map((c) => c.idTokenEncryption?.enc as string))]
            }
          }
        : {}),
      interactions: {
        url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`
      },
      findAccount: async (_ctx: unknown, sub: string, token?: { grantId?: string }) => {
        const perLogin = token?.grantId !== undefined ? grantClaims.get(token.grantId) : undefined
        const claims = { ...defaultProfile(sub), ...accounts.get(sub), ...perLogin, sub }
        return { accountId: sub, claims: async () => claims }
      },
      renderError: async (ctx: { type: string, body: unknown }, out: Record<string, unknown>) => {
        ctx.type = 'json'
        ctx.body = out
      },
      ttl: {
        AccessToken: 3600,
        AuthorizationCode: 60,
        BackchannelAuthenticationRequest: 600,
        ClientCredentials: 600,
        DeviceCode: 600,
        Grant: 3600,
        IdToken: opts.idTokenTtl ?? 3600,
        Interaction: 600,
        RefreshToken: 3600,
        Session: 3600
      }
    })
    next.on('server_error', (_ctx: unknown, err: unknown) => {
      serverErrors.push(err instanceof Error ? err.stack ?? err.message : String(err))
    })
    next.on('backchannel.success', (_ctx: unknown, client: unknown, accountId: unknown, sid: unknown) => {
      backchannelEvents.push({
        outcome: 'success', clientId: (client as ProviderClient).clientId, accountId: String(accountId),
        sid: typeof sid === 'string' ? sid : undefined
      })
    })
    next.on('backchannel.error', (_ctx: unknown, err: unknown, client: unknown, accountId: unknown, sid: unknown) => {
      const statusCode = (err as { response?: { statusCode?: unknown } } | undefined)?.response?.statusCode
      backchannelEvents.push({
        outcome: 'error', clientId: (client as ProviderClient).clientId, accountId: String(accountId),
        sid: typeof sid === 'string' ? sid : undefined,
        error: err instanceof Error ? err.message : String(err),
        ...(typeof statusCode === 'number' ? { statusCode } : {})
      })
    })
    provider = next
    handler = next.callback()
  }

  async function handleInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const op = provider
    if (op === undefined) throw new Error('provider not ready')
    const { pathname } = new URL(req.url ?? '/', issuer)
    const [, , uid, action] = pathname.split('/')
    const details = await op.interactionDetails(req, res)
    if (details.uid !== uid) throw new Error('interaction uid mismatch')

    if (req.method === 'GET' && action === undefined) {
      sendJson(res, 200, {
        uid: details.uid,
        prompt: details.prompt.name,
        reasons: details.prompt.reasons,
        client_id: details.params.client_id,
        scope: details.params.scope,
        submit: `/interaction/${details.uid}/${details.prompt.name === 'login' ? 'login' : 'confirm'}`
      })
      return
    }
    if (req.method !== 'POST') throw new Error(`unsupported interaction request ${req.method} ${pathname}`)
    const form = new URLSearchParams(await readBody(req))

    if (action === 'login') {
      if (details.prompt.name !== 'login') throw new Error(`expected login prompt, got ${details.prompt.name}`)
      const accountId = form.get('login')
      if (!accountId) throw new Error('missing login')
      await op.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false })
      return
    }

    if (action === 'confirm') {
      if (details.prompt.name !== 'consent') throw new Error(`expected consent prompt, got ${details.prompt.name}`)
      const accountId = details.session?.accountId
      const clientId = details.params.client_id
      if (typeof accountId !== 'string' || typeof clientId !== 'string') throw new Error('no session for consent')
      const grant = details.grantId !== undefined
        ? await op.Grant.find(details.grantId) ?? new op.Grant({ accountId, clientId })
        : new op.Grant({ accountId, clientId })
      const d = details.prompt.details as {
        missingOIDCScope?: string[], missingOIDCClaims?: string[], missingResourceScopes?: Record<string, string[]>
      }
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '))
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims)
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '))
      }
      const grantId = await grant.save()
      const loginId = form.get('login_id')
      const pending = loginId !== null ? pendingLogins.get(loginId) : undefined
      if (pending) grantClaims.set(grantId, pending.claims)
      await op.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
      return
    }
    throw new Error(`unknown interaction action ${String(action)}`)
  }

  buildProvider()

  async function login(lo: LoginOptions): Promise<LoginResult> {
    const client = clients.find((c) => c.clientId === lo.clientId)
    if (!client) throw new Error(`unknown clientId ${lo.clientId}`)
    if (lo.session !== undefined && !(lo.session instanceof BrowserSession)) throw new Error('login(): session must come from login()')
    if (lo.session !== undefined && lo.sub !== undefined && lo.sub !== lo.session.sub) {
      throw new Error(`login(): session is ${lo.session.sub}'s, not ${lo.sub}'s`)
    }
    const sub = lo.sub ?? lo.session?.sub ?? 'alice'
    const claims = lo.claims ?? {}
    const reserved = Object.keys(claims).filter((k) => RESERVED_CLAIMS.has(k))
    if (reserved.length) throw new Error(`login(): cannot override reserved claims ${reserved.join(', ')}`)
    const newNames = Object.keys(claims).filter((k) => !KNOWN_CLAIMS.has(k) && !extraClaimNames.has(k))
    if (newNames.length) {
      // oidc-provider only emits claims it was configured with: register them and swap the provider
      for (const n of newNames) extraClaimNames.add(n)
      buildProvider()
    }

    const loginId = randomToken()
    pendingLogins.set(loginId, { claims })
    const browser = lo.session ?? new BrowserSession(sub)
    const jar = (browser as BrowserSession).jar
    const errorsBefore = serverErrors.length
    const fail = (msg: string): never => {
      const srv = serverErrors.slice(errorsBefore)
      throw new Error(`login(${lo.clientId}, ${sub}): ${msg}${srv.length ? `\nprovider server_error: ${srv.join('\n')}` : ''}`)
    }
    const request = async (url: URL, init: BrowserRequestInit = {}): Promise<Response> => await browserRequest(jar, url, init)

    try {
      const state = randomToken()
      const nonce = lo.nonce === null ? undefined : lo.nonce ?? randomToken()
      const verifier = randomBytes(32).toString('base64url')
      const auth = new URL('/auth', issuer)
      auth.searchParams.set('client_id', client.clientId)
      auth.searchParams.set('response_type', 'code')
      auth.searchParams.set('scope', lo.scope ?? 'openid email profile')
      auth.searchParams.set('redirect_uri', client.redirectUri)
      auth.searchParams.set('state', state)
      auth.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'))
      auth.searchParams.set('code_challenge_method', 'S256')
      if (nonce !== undefined) auth.searchParams.set('nonce', nonce)
      if (lo.maxAge !== undefined) auth.searchParams.set('max_age', String(lo.maxAge))

      let res = await request(auth)
      let code: string | undefined
      for (let step = 0; step < 12 && code === undefined; step++) {
        const location = res.headers.get('location')
        await res.body?.cancel()
        if (res.status < 300 || res.status >= 400 || !location) {
          fail(`expected a redirect, got HTTP ${res.status}`)
        }
        const next = new URL(location as string, issuer)
        if (next.href.startsWith(client.redirectUri)) {
          const p = next.searchParams
          if (p.get('error')) fail(`authorization error ${p.get('error')}: ${p.get('error_description') ?? ''}`)
          if (p.get('state') !== state) fail('state mismatch in authorization response')
          code = p.get('code') ?? fail('no code in authorization response')
          break
        }
        if (next.origin !== issuer) fail(`unexpected redirect to ${next.href}`)
        if (next.pathname.startsWith('/interaction/')) {
          const view = await request(next)
          if (view.status !== 200) fail(`interaction GET HTTP ${view.status}: ${await view.text()}`)
          const info = await view.json() as { prompt: string, submit: string }
          const form: Record<string, string> = info.prompt === 'login'
            ? { login: sub, login_id: loginId }
            : { login_id: loginId }
          res = await request(new URL(info.submit, issuer), { method: 'POST', form })
        } else {
          res = await request(next)
        }
      }
      if (code === undefined) fail('too many redirects')

      const basic = Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`)
        .toString('base64')
      const tokenRes = await request(new URL('/token', issuer), {
        method: 'POST',
        headers: { authorization: `Basic ${basic}` },
        form: { grant_type: 'authorization_code', code: code as string, redirect_uri: client.redirectUri, code_verifier: verifier }
      })
      const tokenBody = await tokenRes.json() as { id_token?: string, access_token?: string, error?: string, error_description?: string }
      if (tokenRes.status !== 200 || typeof tokenBody.id_token !== 'string') {
        fail(`token endpoint HTTP ${tokenRes.status}: ${JSON.stringify(tokenBody)}`)
      }
      return {
        idToken: tokenBody.id_token as string,
        ...(tokenBody.access_token !== undefined ? { accessToken: tokenBody.access_token } : {}),
        ...(nonce !== undefined ? { nonce } : {}),
        session: browser
      }
    } finally {
      pendingLogins.delete(loginId)
    }
  }

  async function logout(session: OpSession, lo: LogoutOptions = {}): Promise<LogoutResult> {
    if (!(session instanceof BrowserSession)) throw new Error('logout(): session must come from login()')
    const eventsBefore = backchannelEvents.length
    const errorsBefore = serverErrors.length
    const fail = (msg: string): never => {
      const srv = serverErrors.slice(errorsBefore)
      throw new Error(`logout(${session.sub}): ${msg}${srv.length ? `\nprovider server_error: ${srv.join('\n')}` : ''}`)
    }
    const end = new URL('/session/end', issuer)
    if (lo.idTokenHint !== undefined) end.searchParams.set('id_token_hint', lo.idTokenHint)
    if (lo.clientId !== undefined) end.searchParams.set('client_id', lo.clientId)
    // The logout page: a confirm form (xsrf) when the session has a user, else an auto-submitting one.
    const page = await browserRequest(session.jar, end, { headers: { accept: 'text/html' } })
    const html = await page.text()
    if (page.status !== 200) fail(`end_session HTTP ${page.status}: ${html}`)
    const form = parseHtmlForm(html) ?? fail(`no form in the logout page: ${html}`)
    const fields = { ...form.fields }
    if (lo.everywhere === false) delete fields.logout
    else fields.logout = 'yes'
    const res = await browserRequest(session.jar, new URL(form.action, issuer), { method: 'POST', form: fields })
    const location = res.headers.get('location')
    const text = await res.text()
    if (res.status !== 303 || location === null) fail(`end_session confirm HTTP ${res.status}: ${text}`)
    return { backchannel: backchannelEvents.slice(eventsBefore), location: new URL(location as string, issuer).href }
  }

  let closed: Promise<void> | undefined

  const op: StartedOp = {
    issuer,
    port,
    clients,
    get jwks() {
      return { keys: keys.map(toPublicJwk) }
    },
    get currentKids() {
      const out = {} as Record<OpAlg, string>
      for (const alg of OP_ALGS) {
        const k = keys.find((key) => key.alg === alg)
        if (k) out[alg] = k.kid
      }
      return out
    },
    client(alg: OpAlg): OpClient {
      const c = clients.find((x) => x.alg === alg)
      if (!c) throw new Error(`no client for ${alg}`)
      return c
    },
    login,
    logout,
    get backchannelEvents() {
      return backchannelEvents
    },
    async setBackchannelLogout(clientId: string, bc: BackchannelLogoutClient) {
      const client = clients.find((c) => c.clientId === clientId)
      if (!client) throw new Error(`unknown clientId ${clientId}`)
      if (!backchannelLogout && bc.uri !== undefined) {
        throw new Error('setBackchannelLogout(): start the provider with backchannelLogout: true')
      }
      if (bc.uri === undefined) {
        delete client.backchannelLogoutUri
        delete client.backchannelLogoutSessionRequired
      } else {
        client.backchannelLogoutUri = bc.uri
        client.backchannelLogoutSessionRequired = bc.sessionRequired ?? false
      }
      buildProvider()
    },
    async rotate() {
      generation += 1
      const fresh = generateKeySet(generation)
      keys = [...fresh, ...keys] // new keys first => used for signing; old ones still published
      buildProvider()
    },
    async close() {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()))
        server.closeAllConnections()
      })
      await closed
      handler = undefined
      provider = undefined
      store.clear()
    }
  }
  return op
}
