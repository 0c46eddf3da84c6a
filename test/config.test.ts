import { join } from 'node:path'
import t from 'tap'
import Value from 'typebox/value'
import { ConfigError, loadConfig, MAX_CONFIG_FILE_BYTES, parseConfig } from '../src/config/load.js'
import {
  ClaimMappingSchema,
  ConfigFileSchema,
  FETCH_DEFAULTS,
  TOKEN_CACHE_DEFAULTS,
  JWKS_DEFAULTS,
  LOAD_SHEDDING_DEFAULTS,
  RATE_LIMIT_DEFAULTS,
  SERVER_DEFAULTS
} from '../src/config/schema.js'
import { DEFAULT_ALGORITHMS, MAPPABLE_FIELDS, type Config } from '../src/config/types.js'
import { configProblems } from './helpers/config.js'

const SECRET_32 = 'x'.repeat(32)
const SECRET_64 = 'y'.repeat(64)

/** Runs fn, expecting a ConfigError; returns its problems. */
function problemsOf (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

/** parseConfig of a document with the given issuers (and other sections), in an empty environment. */
function parse (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Config {
  return parseConfig(doc, 'config.yaml', env)
}

const minimalIssuer = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'google',
  issuer: 'https://accounts.google.com',
  audiences: ['client-1'],
  ...extra
})

const FULL_YAML = `
# every option
server:
  host: 0.0.0.0
  port: 9090
  logLevel: debug
  bodyLimit: 32768
  maxTokenBytes: 8192
  shutdownGraceSeconds: 20
  trustProxy: [10.0.0.0/8, 127.0.0.1, "::1", loopback]
  clientIpv6PrefixLength: 128
  connectionTimeoutMs: 5000
  requestTimeoutMs: 8000
  headersTimeoutMs: 4000
  keepAliveTimeoutMs: 65000
  signatureChecks: event-loop
  readiness: every-issuer
  opsPort: 9091
  opsHost: 127.0.0.1
  certificateCheckSeconds: 300
metrics:
  enabled: false
callers:
  keys:
    - id: billing
      sha256: 2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE
      rateLimit: { max: 5 }
    - id: web
      sha256Env: WEB_KEY_SHA256
  protectMetrics: false
  maxFailuresPerMinute: 5
loadShedding:
  enabled: true
  maxEventLoopDelayMs: 500
  maxEventLoopUtilization: 0.9
  maxHeapUsedBytes: 1073741824
  maxRssBytes: 2147483648
  sampleIntervalMs: 250
  retryAfterSeconds: 3
revocation:
  enabled: true
  store: redis
  maxEntries: 500
  retentionSeconds: 7200
  maxSessionsPerUser: 5
  logoutTokenMaxAgeSeconds: 60
  logoutRateLimit: { max: 100, windowSeconds: 10 }
  redis:
    url: redis://127.0.0.1:6379/1
    keyPrefix: "svc-a:"
    maxStalenessSeconds: 5
    commandTimeoutMs: 200
rateLimit:
  enabled: false
  max: 50
  windowSeconds: 10
  headers: true
jwks:
  maxEntries: 10
  defaultFreshnessSeconds: 300
  minFreshnessSeconds: 30
  maxFreshnessSeconds: 3600
  staleIfErrorSeconds: 600
  unknownKidCooldownSeconds: 10
  unknownKidRefreshesPerMinute: 3
  backoffInitialSeconds: 2
  backoffMaxSeconds: 60
  rediscoverySeconds: 3600
fetch:
  timeoutMs: 2000
  maxResponseBytes: 65536
tokenCache:
  enabled: false
  maxEntries: 1000
  maxBytes: 2097152
  maxTtlSeconds: 60
issuers:
  - id: google
    issuer: https://accounts.google.com
    audiences: [web-client, android-client]
    authorizedParties: [ios-client]
    algorithms: [RS256]
    clockToleranceSeconds: 10
    maxTokenAgeSeconds: 86400
    requiredClaims:
      hd: example.com
      "https://example.com/roles": [admin, user]
    claimMapping:
      groups: realm_access.roles
      tenant: hd
  - id: corp_idp-2
    issuer: http://127.0.0.1:8443/realms/corp
    audiences: [svc]
    jwksUri: https://keys.example.com/jwks.json
    algorithms: [ES256, HS512]
    clientSecretEnv: CORP_SECRET
  - id: airgap
    issuer: https://idp.internal.example
    audiences: [svc]
    jwks:
      keys:
        - { kty: EC, crv: P-256, kid: k1, x: abc, y: def, use: sig, alg: ES256 }
`

t.test('a valid full YAML file resolves every option', async (t) => {
  const dir = t.testdir({ 'config.yaml': FULL_YAML })
  const path = join(dir, 'config.yaml')
  const config = loadConfig({ argv: ['--config', path], env: { CORP_SECRET: SECRET_64, WEB_KEY_SHA256: 'fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9' } })
  t.match(config, {
    metrics: { enabled: false },
    callers: {
      keys: [
        { id: 'billing', sha256: '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae', rateLimit: { max: 5 } },
        { id: 'web', sha256: 'fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9' }
      ],
      protectMetrics: false,
      maxFailuresPerMinute: 5
    },
    loadShedding: { enabled: true, maxEventLoopDelayMs: 500, maxEventLoopUtilization: 0.9, maxHeapUsedBytes: 1073741824, maxRssBytes: 2147483648, sampleIntervalMs: 250, retryAfterSeconds: 3 }
  })
  // Every option is written, so those that the others turn off are ignored, each said (test/config-warnings.test.ts).
  const { warnings, ...settings } = config
  t.same(warnings.map((w) => w.setting), [
    'rateLimit.max', 'rateLimit.windowSeconds', 'rateLimit.headers', 'revocation.logoutRateLimit', 'callers.keys[0].rateLimit',
    'callers.protectMetrics', 'tokenCache.maxEntries', 'tokenCache.maxBytes', 'tokenCache.maxTtlSeconds', 'server.certificateCheckSeconds'
  ])
  t.same(settings, {
    server: {
      host: '0.0.0.0',
      port: 9090,
      logLevel: 'debug',
      bodyLimit: 32768,
      maxTokenBytes: 8192,
      shutdownGraceSeconds: 20,
      trustProxy: ['10.0.0.0/8', '127.0.0.1', '::1', 'loopback'],
      clientIpv6PrefixLength: 128,
      connectionTimeoutMs: 5000,
      requestTimeoutMs: 8000,
      headersTimeoutMs: 4000,
      keepAliveTimeoutMs: 65000,
      signatureChecks: 'event-loop',
      readiness: 'every-issuer',
      certificateCheckSeconds: 300,
      opsPort: 9091,
      opsHost: '127.0.0.1'
    },
    rateLimit: { enabled: false, max: 50, windowSeconds: 10, headers: true },
    jwks: {
      maxEntries: 10,
      defaultFreshnessSeconds: 300,
      minFreshnessSeconds: 30,
      maxFreshnessSeconds: 3600,
      staleIfErrorSeconds: 600,
      unknownKidCooldownSeconds: 10,
      unknownKidRefreshesPerMinute: 3,
      backoffInitialSeconds: 2,
      backoffMaxSeconds: 60,
      rediscoverySeconds: 3600
    },
    fetch: { timeoutMs: 2000, maxResponseBytes: 65536 },
    tokenCache: { enabled: false, maxEntries: 1000, maxBytes: 2097152, maxTtlSeconds: 60 },
    metrics: { enabled: false },
    callers: {
      keys: [
        { id: 'billing', sha256: '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae', rateLimit: { max: 5 } },
        { id: 'web', sha256: 'fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9' }
      ],
      protectMetrics: false,
      maxFailuresPerMinute: 5
    },
    loadShedding: { enabled: true, maxEventLoopDelayMs: 500, maxEventLoopUtilization: 0.9, maxHeapUsedBytes: 1073741824, maxRssBytes: 2147483648, sampleIntervalMs: 250, retryAfterSeconds: 3 },
    // forwardAuth and batch: every option is exercised in test/forward-auth-config.test.ts.
    forwardAuth: {
      headers: { subject: 'x-auth-subject', userKey: 'x-auth-user-key', issuer: 'x-auth-issuer', issuerId: 'x-auth-issuer-id', email: 'x-auth-email', emailVerified: 'x-auth-email-verified', name: 'x-auth-name', groups: 'x-auth-groups', groupsOverage: 'x-auth-groups-overage', roles: 'x-auth-roles', tenant: 'x-auth-tenant', identity: 'x-auth-identity' },
      identityHeader: false,
      stripToken: false,
      keysUnavailableStatus: 401,
      require: { groups: [], roles: [], audiences: [], issuers: [] },
      rules: []
    },
    batch: { maxTokens: 100, maxBodyBytes: 1048576 },
    revocation: {
      enabled: true,
      store: 'redis',
      maxEntries: 500,
      retentionSeconds: 7200,
      maxSessionsPerUser: 5,
      logoutTokenMaxAgeSeconds: 60,
      logoutRateLimit: { max: 100, windowSeconds: 10 },
      redis: { url: 'redis://127.0.0.1:6379/1', keyPrefix: 'svc-a:', maxStalenessSeconds: 5, commandTimeoutMs: 200 }
    },
    issuers: [
      {
        id: 'google',
        issuer: 'https://accounts.google.com',
        audiences: ['web-client', 'android-client'],
        authorizedParties: ['ios-client'],
        algorithms: ['RS256'],
        keys: { kind: 'discovery' },
        clockToleranceSeconds: 10,
        maxTokenAgeSeconds: 86400,
        requiredClaims: { hd: ['example.com'], 'https://example.com/roles': ['admin', 'user'] },
        claimMapping: { groups: 'realm_access.roles', tenant: 'hd' }
      },
      {
        id: 'corp_idp-2',
        issuer: 'http://127.0.0.1:8443/realms/corp',
        audiences: ['svc'],
        authorizedParties: [],
        algorithms: ['ES256', 'HS512'],
        keys: { kind: 'jwksUri', jwksUri: 'https://keys.example.com/jwks.json' },
        clientSecret: SECRET_64,
        clockToleranceSeconds: 30,
        requiredClaims: {},
        claimMapping: {}
      },
      {
        id: 'airgap',
        issuer: 'https://idp.internal.example',
        audiences: ['svc'],
        authorizedParties: [],
        algorithms: [...DEFAULT_ALGORITHMS],
        keys: { kind: 'inline', jwks: { keys: [{ kty: 'EC', crv: 'P-256', kid: 'k1', x: 'abc', y: 'def', use: 'sig', alg: 'ES256' }] } },
        clockToleranceSeconds: 30,
        requiredClaims: {},
        claimMapping: {}
      }
    ],
    source: path
  })
  t.equal(config.issuers[2]!.maxTokenAgeSeconds, undefined)
  t.notOk('clientSecret' in config.issuers[0]!, 'no secret, no clientSecret property')
})

t.test('a valid JSON file, by --config=PATH and by OIDC_VERIFIER_CONFIG, gets the defaults', async (t) => {
  const doc = { issuers: [minimalIssuer()] }
  const dir = t.testdir({ 'config.json': JSON.stringify(doc, null, 2), 'upper.JSON': JSON.stringify(doc) })
  const path = join(dir, 'config.json')
  const expected: Config = {
    server: { ...SERVER_DEFAULTS },
    rateLimit: { ...RATE_LIMIT_DEFAULTS },
    jwks: { ...JWKS_DEFAULTS },
    fetch: { ...FETCH_DEFAULTS },
    tokenCache: { ...TOKEN_CACHE_DEFAULTS },
    metrics: { enabled: true },
    callers: { keys: [], protectMetrics: true, maxFailuresPerMinute: 60 },
    loadShedding: { ...LOAD_SHEDDING_DEFAULTS },
    forwardAuth: {
      headers: { subject: 'x-auth-subject', userKey: 'x-auth-user-key', issuer: 'x-auth-issuer', issuerId: 'x-auth-issuer-id', email: 'x-auth-email', emailVerified: 'x-auth-email-verified', name: 'x-auth-name', groups: 'x-auth-groups', groupsOverage: 'x-auth-groups-overage', roles: 'x-auth-roles', tenant: 'x-auth-tenant', identity: 'x-auth-identity' },
      identityHeader: false,
      stripToken: false,
      keysUnavailableStatus: 401,
      require: { groups: [], roles: [], audiences: [], issuers: [] },
      rules: []
    },
    batch: { maxTokens: 100, maxBodyBytes: 1048576 },
    revocation: { enabled: false, store: 'memory', maxEntries: 30000, retentionSeconds: 86400, maxSessionsPerUser: 20, logoutTokenMaxAgeSeconds: 300, logoutRateLimit: { max: 6000, windowSeconds: 60 } },
    issuers: [{
      id: 'google',
      issuer: 'https://accounts.google.com',
      audiences: ['client-1'],
      authorizedParties: [],
      algorithms: [...DEFAULT_ALGORITHMS],
      keys: { kind: 'discovery' },
      clockToleranceSeconds: 30,
      requiredClaims: {},
      claimMapping: {}
    }],
    source: path,
    warnings: []
  }
  t.same(loadConfig({ argv: [`--config=${path}`], env: {} }), expected)
  t.same(loadConfig({ argv: [], env: { OIDC_VERIFIER_CONFIG: path } }), expected)
  t.equal(loadConfig({ argv: [], env: { OIDC_VERIFIER_CONFIG: join(dir, 'upper.JSON') } }).issuers.length, 1)
  // --config wins over OIDC_VERIFIER_CONFIG
  t.equal(loadConfig({ argv: ['--config', path], env: { OIDC_VERIFIER_CONFIG: '/nope.yaml' } }).source, path)
})

t.test('the documented defaults', async (t) => {
  t.same(SERVER_DEFAULTS, {
    host: '127.0.0.1', port: 8080, logLevel: 'info', bodyLimit: 65536, maxTokenBytes: 16384, shutdownGraceSeconds: 10, trustProxy: false, clientIpv6PrefixLength: 64,
    connectionTimeoutMs: 10000, requestTimeoutMs: 15000, headersTimeoutMs: 10000, keepAliveTimeoutMs: 72000, signatureChecks: 'auto',
    readiness: 'any-issuer', certificateCheckSeconds: 60
  })
  t.same(LOAD_SHEDDING_DEFAULTS, { enabled: true, maxEventLoopDelayMs: 1000, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, sampleIntervalMs: 1000, retryAfterSeconds: 10 })
  t.same(RATE_LIMIT_DEFAULTS, { enabled: true, windowSeconds: 60, headers: false }, 'no per-caller max: see the next test')
  t.same(TOKEN_CACHE_DEFAULTS, { enabled: true, maxEntries: 50000, maxBytes: 67108864, maxTtlSeconds: 300 })
  t.same(JWKS_DEFAULTS, {
    maxEntries: 100,
    defaultFreshnessSeconds: 600,
    minFreshnessSeconds: 60,
    maxFreshnessSeconds: 86400,
    staleIfErrorSeconds: 21600,
    unknownKidCooldownSeconds: 5,
    unknownKidRefreshesPerMinute: 6,
    backoffInitialSeconds: 1,
    backoffMaxSeconds: 300,
    rediscoverySeconds: 86400
  })
  t.same(FETCH_DEFAULTS, { timeoutMs: 5000, maxResponseBytes: 524288 })
})

t.test('the schema agrees with types.ts and with TypeBox', async (t) => {
  t.same(Object.keys(ClaimMappingSchema.properties).sort(), [...MAPPABLE_FIELDS].sort())
  const dir = t.testdir({ 'config.yaml': FULL_YAML })
  // The file that loads is also valid for TypeBox's own checker.
  const { parse: parseYaml } = await import('yaml')
  const { readFileSync } = await import('node:fs')
  t.ok(Value.Check(ConfigFileSchema, parseYaml(readFileSync(join(dir, 'config.yaml'), 'utf8'))))
})

t.test('environment-only mode', async (t) => {
  const config = loadConfig({
    argv: [],
    env: {
      OIDC_ISSUER: 'https://login.example.com/',
      OIDC_AUDIENCE: ' web , api ',
      OIDC_ALGORITHMS: 'RS256, ES256',
      OIDC_JWKS_URI: 'https://login.example.com/keys',
      OIDC_ISSUER_ID: 'example'
    }
  })
  t.equal(config.source, 'environment')
  t.same(config.issuers, [{
    id: 'example',
    issuer: 'https://login.example.com/',
    audiences: ['web', 'api'],
    authorizedParties: [],
    algorithms: ['RS256', 'ES256'],
    keys: { kind: 'jwksUri', jwksUri: 'https://login.example.com/keys' },
    clockToleranceSeconds: 30,
    requiredClaims: {},
    claimMapping: {}
  }])
  t.same(config.server, SERVER_DEFAULTS)

  const minimal = loadConfig({ argv: [], env: { OIDC_ISSUER: 'http://localhost:8080/realms/dev', OIDC_AUDIENCE: 'app' } })
  t.equal(minimal.issuers[0]!.id, 'default')
  t.same(minimal.issuers[0]!.keys, { kind: 'discovery' })
  t.same(minimal.issuers[0]!.algorithms, DEFAULT_ALGORITHMS)
})

t.test('environment-only mode errors name the variables', async (t) => {
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'a,,b,' } })), [
    'environment: OIDC_AUDIENCE (item 2): expected a non-empty client id, got an empty string',
    'environment: OIDC_AUDIENCE (item 4): expected a non-empty client id, got an empty string'
  ])
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_ISSUER: 'http://idp.example.com' } })), [
    'environment: OIDC_AUDIENCE: not set; expected a non-empty list of client ids',
    'environment: OIDC_ISSUER: expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got "http://idp.example.com"'
  ])
  t.same(problemsOf(() => loadConfig({
    argv: [],
    env: { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'a', OIDC_ALGORITHMS: 'RS256,none,HS256', OIDC_ISSUER_ID: 'Bad Id', OIDC_JWKS_URI: 'ftp://x' }
  })), [
    'environment: OIDC_ISSUER_ID: expected an id of 1 to 64 characters: lowercase letters, digits, "_" and "-", starting with a letter or digit, got "Bad Id"',
    'environment: OIDC_JWKS_URI: expected an https URL, got "ftp://x"',
    'environment: OIDC_ALGORITHMS (item 2): "none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm',
    'environment: OIDC_ALGORITHMS (item 3): HS256 requires a client secret, which environment-only mode cannot configure; use a configuration file with clientSecret or clientSecretEnv'
  ])
})

t.test('a URL the parser would mend is refused: written so, an issuer never equals a token\'s iss', async (t) => {
  for (const written of ['https:idp.example.com', 'https:/idp.example.com', 'https:\\\\idp.example.com', 'HTTPS://idp.example.com', 'Https://idp.example.com/realms/a']) {
    t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_ISSUER: written, OIDC_AUDIENCE: 'a' } })), [
      `environment: OIDC_ISSUER: expected the URL to start with https:// in lower case, as providers write it, got ${JSON.stringify(written)}`
    ], written)
  }
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'a', OIDC_JWKS_URI: 'http:/127.0.0.1:8080/jwks' } })), [
    'environment: OIDC_JWKS_URI: expected the URL to start with http:// in lower case, as providers write it, got "http:/127.0.0.1:8080/jwks"'
  ], 'jwksUri too')
  t.equal(loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://idp.example.com:8443/realms/a', OIDC_AUDIENCE: 'a' } }).issuers[0]!.issuer, 'https://idp.example.com:8443/realms/a')
})

t.test('HOST, PORT and LOG_LEVEL override the file', async (t) => {
  const dir = t.testdir({ 'c.yml': 'server: { host: 10.1.1.1, port: 1234, logLevel: warn }\nissuers: [{ id: a, issuer: "https://a.example", audiences: [x] }]\n' })
  const argv = ['--config', join(dir, 'c.yml')]
  const config = loadConfig({ argv, env: { HOST: '::', PORT: '0', LOG_LEVEL: 'trace' } })
  t.same([config.server.host, config.server.port, config.server.logLevel], ['::', 0, 'trace'])
  const fileOnly = loadConfig({ argv, env: {} })
  t.same([fileOnly.server.host, fileOnly.server.port, fileOnly.server.logLevel], ['10.1.1.1', 1234, 'warn'])
  t.equal(loadConfig({ argv, env: { PORT: '' } }).server.port, 1234, 'an empty variable counts as unset')

  t.same(problemsOf(() => loadConfig({ argv, env: { PORT: '65536', LOG_LEVEL: 'verbose' } })), [
    'environment: PORT: expected an integer from 0 to 65535, got "65536"',
    'environment: LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"'
  ])
  for (const port of ['-1', '80a', '8080.0', ' 80', '0x50']) {
    t.same(problemsOf(() => loadConfig({ argv, env: { PORT: port } })), [`environment: PORT: expected an integer from 0 to 65535, got ${JSON.stringify(port)}`])
  }
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'a', PORT: 'http' } })), [
    'environment: PORT: expected an integer from 0 to 65535, got "http"'
  ])
})

t.test('wrong types are errors, never coerced; ranges are stated', async (t) => {
  t.same(problemsOf(() => parse({
    server: { port: '8080', bodyLimit: 1000, shutdownGraceSeconds: 1.5, trustProxy: 'yes', host: '', signatureChecks: 'threads', readiness: 'all' },
    rateLimit: { enabled: 'true', max: 0, windowSeconds: Number.NaN },
    jwks: { maxEntries: -1, staleIfErrorSeconds: Infinity },
    fetch: { timeoutMs: 10 },
    issuers: [minimalIssuer({ clockToleranceSeconds: 301, maxTokenAgeSeconds: 0 })]
  })), [
    'config.yaml: server.port: expected an integer from 0 to 65535, got "8080"',
    'config.yaml: server.bodyLimit: expected an integer from 1024 to 10485760, got 1000',
    'config.yaml: server.shutdownGraceSeconds: expected an integer from 0 to 600, got 1.5',
    'config.yaml: server.trustProxy: expected true, false or a list of addresses/CIDRs, got "yes"',
    'config.yaml: server.host: expected a non-empty host name or address, got an empty string',
    'config.yaml: server.signatureChecks: expected auto, thread-pool or event-loop, got "threads"',
    'config.yaml: server.readiness: expected any-issuer or every-issuer, got "all"',
    'config.yaml: rateLimit.enabled: expected true or false, got "true"',
    'config.yaml: rateLimit.max: expected an integer from 1 to 1000000000, got 0',
    'config.yaml: rateLimit.windowSeconds: expected an integer from 1 to 86400, got NaN',
    'config.yaml: jwks.maxEntries: expected an integer from 1 to 100000, got -1',
    'config.yaml: jwks.staleIfErrorSeconds: expected an integer from 0 to 604800, got Infinity',
    'config.yaml: fetch.timeoutMs: expected an integer from 100 to 60000, got 10',
    'config.yaml: issuers[0].clockToleranceSeconds: expected an integer from 0 to 300, got 301',
    'config.yaml: issuers[0].maxTokenAgeSeconds: expected an integer from 1 to 31536000, got 0'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ audiences: 'client-1' })], server: null })), [
    'config.yaml: server: expected a mapping of server options, got null',
    'config.yaml: issuers[0].audiences: expected a non-empty list of client ids, got "client-1"'
  ])
  t.same(problemsOf(() => parse({ issuers: [] })), ['config.yaml: issuers: expected a non-empty list of issuers, got an empty list'])
  t.same(problemsOf(() => parseConfig([1], 'c.json', {})), ['c.json: expected a mapping of configuration sections, got a list'])
  t.same(problemsOf(() => parse({})), ['config.yaml: issuers: missing; expected a non-empty list of issuers'])
  t.same(problemsOf(() => parse({ issuers: [{}] })), [
    'config.yaml: issuers[0].id: missing; expected an id of 1 to 64 characters: lowercase letters, digits, "_" and "-", starting with a letter or digit',
    'config.yaml: issuers[0].issuer: missing; expected an https URL (http only for loopback hosts)',
    'config.yaml: issuers[0].audiences: missing; expected a non-empty list of client ids'
  ])
})

t.test('several problems in one file are all reported, in document order', async (t) => {
  const yaml = [
    'server:',
    '  port: 99999',
    'issuers:',
    '  - id: a',
    '    issuer: https://a.example',
    '    audiences: []',
    '  - id: b',
    '    issuer: http://b.example.com',
    '    audience: [x]',
    '    algorithms: [none]'
  ].join('\n')
  const problems = problemsOf(() => loadConfig({ argv: ['--config', 'config.yaml'], env: {}, readFile: () => yaml }))
  t.same(problems, [
    'config.yaml: server.port: expected an integer from 0 to 65535, got 99999',
    'config.yaml: issuers[0].audiences: expected a non-empty list of client ids, got an empty list',
    'config.yaml: issuers[1].audience: unknown option (did you mean "audiences"?)',
    'config.yaml: issuers[1].audiences: missing; expected a non-empty list of client ids',
    'config.yaml: issuers[1].issuer: expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got "http://b.example.com"',
    'config.yaml: issuers[1].algorithms[0]: "none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm'
  ])
  try {
    loadConfig({ argv: ['--config', 'config.yaml'], env: {}, readFile: () => yaml })
  } catch (err) {
    t.ok(err instanceof ConfigError)
    const lines = (err as Error).message.split('\n')
    t.equal(lines[0], 'invalid configuration (6 problems):')
    t.same(lines.slice(1).map((l) => l.trim()), problems, 'one line per problem')
  }
})

t.test('unknown options at every level, with suggestions', async (t) => {
  t.same(problemsOf(() => parse({
    issuer: [],
    server: { logLevle: 'info', colour: true },
    rateLimit: { window: 5 },
    jwks: { maxentries: 5 },
    fetch: { timeout_ms: 5 },
    issuers: [minimalIssuer({ client_secret: 'x', claimMapping: { grups: 'g' } })]
  })), [
    'config.yaml: server.logLevle: unknown option (did you mean "logLevel"?)',
    'config.yaml: server.colour: unknown option (expected one of: host, port, logLevel, bodyLimit, maxTokenBytes, shutdownGraceSeconds, trustProxy, ' +
      'clientIpv6PrefixLength, connectionTimeoutMs, requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs, maxConnections, signatureChecks, readiness, opsPort, opsHost, certificateCheckSeconds, tls, opsTls)',
    'config.yaml: rateLimit.window: unknown option (did you mean "windowSeconds"?)',
    'config.yaml: jwks.maxentries: unknown option (did you mean "maxEntries"?)',
    'config.yaml: fetch.timeout_ms: unknown option (did you mean "timeoutMs"?)',
    'config.yaml: issuer: unknown option (did you mean "issuers"?)',
    'config.yaml: issuers[0].client_secret: unknown option (did you mean "clientSecret"?)',
    'config.yaml: issuers[0].claimMapping.grups: unknown option (did you mean "groups"?)'
  ])
})

t.test('algorithms', async (t) => {
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['none', 'NONE', 'rs256', 'XS999', 'HS256', ''] })] })), [
    'config.yaml: issuers[0].algorithms[5]: expected a non-empty algorithm name, got an empty string',
    'config.yaml: issuers[0].algorithms[0]: "none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm',
    'config.yaml: issuers[0].algorithms[1]: "none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm',
    'config.yaml: issuers[0].algorithms[2]: unsupported algorithm "rs256"; did you mean "RS256"?',
    'config.yaml: issuers[0].algorithms[3]: unsupported algorithm "XS999"; expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256, HS384, HS512',
    'config.yaml: issuers[0].algorithms[4]: HS256 requires a client secret; set clientSecret or clientSecretEnv (HMAC ID tokens are signed with the client secret)'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: [] })] })), [
    'config.yaml: issuers[0].algorithms: expected a non-empty list of algorithm names, got an empty list'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['RS256', 'RS256'] })] })), [
    'config.yaml: issuers[0].algorithms[1]: duplicate value "RS256"; expected each value once'
  ])
})

t.test('client secrets', async (t) => {
  const hs = parse({ issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecret: SECRET_32 })] })
  t.equal(hs.issuers[0]!.clientSecret, SECRET_32)
  // A secret without an HMAC algorithm is not kept: HMAC is not allowed.
  const unused = parse({ issuers: [minimalIssuer({ clientSecret: SECRET_32 })] })
  t.equal(unused.issuers[0]!.clientSecret, undefined)

  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecret: 'short-secret' })] })), [
    'config.yaml: issuers[0].clientSecret: expected at least 32 bytes (HS256 needs a key of at least 256 bits), got 12 bytes'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ clientSecret: 'short' })] })), [
    'config.yaml: issuers[0].clientSecret: expected at least 32 bytes (HS256 needs a key of at least 256 bits), got 5 bytes'
  ], 'a short secret is an error even when HMAC is not enabled')
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS256', 'HS384'], clientSecret: SECRET_32 })] })), [
    'config.yaml: issuers[0].clientSecret: expected at least 48 bytes (HS384 in algorithms needs a key of at least 384 bits), got 32 bytes'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS512'], clientSecretEnv: 'IDP_SECRET' })] }, { IDP_SECRET: SECRET_32 })), [
    'config.yaml: issuers[0].clientSecretEnv: expected the value of IDP_SECRET at least 64 bytes (HS512 in algorithms needs a key of at least 512 bits), got 32 bytes'
  ])
  t.equal(parse({ issuers: [minimalIssuer({ algorithms: ['HS512'], clientSecretEnv: 'IDP_SECRET' })] }, { IDP_SECRET: SECRET_64 }).issuers[0]!.clientSecret, SECRET_64)
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecretEnv: 'IDP_SECRET' })] })), [
    'config.yaml: issuers[0].clientSecretEnv: expected environment variable IDP_SECRET to hold the client secret, but it is not set'
  ])
  // The environment is an object: names it inherits (Object.prototype's) are not variables.
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecretEnv: name })] }, {})), [
      `config.yaml: issuers[0].clientSecretEnv: expected environment variable ${name} to hold the client secret, but it is not set`
    ], `clientSecretEnv: ${name}`)
  }
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ clientSecret: SECRET_32, clientSecretEnv: 'X' })] }, { X: SECRET_32 })), [
    'config.yaml: issuers[0]: clientSecret and clientSecretEnv are mutually exclusive; expected at most one of them'
  ])
  // A secret pasted into clientSecretEnv by mistake is not echoed.
  const pasted = 'sk-' + 'Z'.repeat(40)
  const problems = problemsOf(() => parse({ issuers: [minimalIssuer({ clientSecretEnv: pasted })] }))
  t.same(problems, ['config.yaml: issuers[0].clientSecretEnv: expected an environment variable name, got a string'])
  t.notMatch(problems.join('\n'), pasted)
})

t.test('key sources: jwksUri, inline jwks, both', async (t) => {
  const both = { jwksUri: 'https://a.example/jwks', jwks: { keys: [{ kty: 'RSA', n: 'n', e: 'AQAB' }] } }
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer(both)] })), [
    'config.yaml: issuers[0]: jwks and jwksUri are mutually exclusive; expected one of them (or neither, to use discovery)'
  ])
  t.same(problemsOf(() => parse({
    issuers: [minimalIssuer({
      jwks: { keys: [{ kty: 'RSA', n: 'n', e: 'AQAB', d: 'secret', p: 'p', q: 'q' }, { kty: 'oct', k: 'c2VjcmV0' }, { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] }
    })]
  })), [
    'config.yaml: issuers[0].jwks.keys[0]: contains private key members (d, p, q); expected public keys only (never put private or symmetric keys in a JWKS; use clientSecret for HMAC)',
    'config.yaml: issuers[0].jwks.keys[1]: contains private key members (k); expected public keys only (never put private or symmetric keys in a JWKS; use clientSecret for HMAC)'
  ])
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ jwks: { keys: [] } }), minimalIssuer({ id: 'b', issuer: 'https://b.example', jwks: { keys: [{ kty: 1 }, 'x', {}] } }), minimalIssuer({ id: 'c', issuer: 'https://c.example', jwks: [] })] })), [
    'config.yaml: issuers[0].jwks.keys: expected a non-empty list of JWK objects, got an empty list',
    'config.yaml: issuers[1].jwks.keys[0].kty: expected a non-empty string (the key type), got 1',
    'config.yaml: issuers[1].jwks.keys[1]: expected a JWK object, got "x"',
    'config.yaml: issuers[1].jwks.keys[2].kty: missing; expected a non-empty string (the key type)',
    'config.yaml: issuers[2].jwks: expected a JWKS object with a non-empty "keys" list, got an empty list'
  ])
})

t.test('issuer and jwksUri URLs', async (t) => {
  const url = (issuer: string, extra: Record<string, unknown> = {}) => problemsOf(() => parse({ issuers: [minimalIssuer({ issuer, ...extra })] }))
  t.same(url('http://accounts.google.com'), [
    'config.yaml: issuers[0].issuer: expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got "http://accounts.google.com"'
  ])
  // A query, a fragment or a user name may hold a credential: never quoted.
  t.same(url('https://a.example/?tenant=1'), ['config.yaml: issuers[0].issuer: expected a URL without a query string or fragment, got "https://a.example/…" (the rest not shown: it may hold a credential)'])
  t.same(url('https://a.example/#x'), ['config.yaml: issuers[0].issuer: expected a URL without a query string or fragment, got "https://a.example/…" (the rest not shown: it may hold a credential)'])
  for (const leaky of ['http://svc:S3cretPw@idp.example.com/jwks', 'https://idp.example.com/jwks?api_key=S3cretPw', 'https://idp.example.com/j wks?api_key=S3cretPw', 'idp.example.com/?key=S3cretPw']) {
    const problems = url('https://a.example', { jwksUri: leaky })
    t.equal(problems.length, 1, leaky)
    t.notOk(problems.join().includes('S3cretPw'), `${leaky}: the credential is not quoted`)
  }
  t.same(url('accounts.google.com'), ['config.yaml: issuers[0].issuer: expected an absolute https URL, got "accounts.google.com"'])
  t.same(url(' https://a.example'), ['config.yaml: issuers[0].issuer: expected a URL without whitespace, got " https://a.example"'])
  t.same(url('https://user:pw@a.example'), ['config.yaml: issuers[0].issuer: expected a URL without a user name or password'])
  t.same(url('https://a.example', { jwksUri: 'http://10.0.0.1/jwks' }), [
    'config.yaml: issuers[0].jwksUri: expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got "http://10.0.0.1/jwks"'
  ])
  for (const ok of ['http://127.0.0.1:3000', 'http://127.8.9.10/realm', 'http://[::1]:8080/', 'http://localhost/x', 'https://a.example/tenant/v2.0']) {
    t.equal(parse({ issuers: [minimalIssuer({ issuer: ok })] }).issuers[0]!.issuer, ok, `${ok} is accepted and kept exactly`)
  }
})

t.test('duplicates', async (t) => {
  t.same(problemsOf(() => parse({
    issuers: [
      minimalIssuer({ audiences: ['a', 'b', 'a'], authorizedParties: ['p', 'p'] }),
      minimalIssuer({ issuer: 'https://other.example' }),
      minimalIssuer({ id: 'third', audiences: ['b'] })
    ]
  })), [
    'config.yaml: issuers[0].audiences[2]: duplicate value "a"; expected each value once',
    'config.yaml: issuers[0].authorizedParties[1]: duplicate value "p"; expected each value once',
    'config.yaml: issuers[1].id: duplicate id "google" (also issuers[0].id); expected unique ids',
    'config.yaml: issuers[2].issuer: the issuer "https://accounts.google.com" is also issuers[0].issuer, with the same audience "b"; expected disjoint audiences (a token goes to the issuer its aud names)'
  ])
})

t.test('thousands of issuers sharing one issuer string: all taken, and one sharing an audience names the first that has it', async (t) => {
  // Checked against the group, not each other issuer (src/config/provider-options.ts): compared pairwise, these
  // 10000 held start (or a reload's event loop) for 25-50 s on a 2-core VM; now well under a second. Not timed
  // here (speed is measured, not asserted); a quadratic check again would show as this file's time.
  const issuers = Array.from({ length: 10000 }, (_, i) => minimalIssuer({ id: `g${i}`, audiences: [`client-${i}`] }))
  t.equal(parse({ issuers }).issuers.length, 10000)
  issuers.push(minimalIssuer({ id: 'late', audiences: ['new', 'client-9000', 'client-42'] }))
  t.match(problemsOf(() => parse({ issuers })), ['config.yaml: issuers[10000].issuer: the issuer "https://accounts.google.com" is also issuers[42].issuer, with the same audience "client-42"; expected disjoint audiences (a token goes to the issuer its aud names)'],
    'the first issuer sharing an audience is named, as before')
})

t.test('requiredClaims and claimMapping', async (t) => {
  const odd = parseConfig(JSON.parse('{"issuers":[{"id":"a","issuer":"https://a.example","audiences":["x"],"requiredClaims":{"__proto__":"v","constructor":"w"}}]}'), 'c.json', {})
  t.same(Object.entries(odd.issuers[0]!.requiredClaims), [['__proto__', ['v']], ['constructor', ['w']]], 'odd claim names stay plain keys')

  const config = parse({ issuers: [minimalIssuer({ requiredClaims: { hd: 'example.com', tid: ['t1', 't2'] }, claimMapping: { roles: 'realm_access.roles' } })] })
  t.same(config.issuers[0]!.requiredClaims, { hd: ['example.com'], tid: ['t1', 't2'] })
  t.same(config.issuers[0]!.claimMapping, { roles: 'realm_access.roles' })
  t.same(problemsOf(() => parse({ issuers: [minimalIssuer({ requiredClaims: { hd: [], tid: 5, x: ['a', 2] }, claimMapping: { email: '' } })] })), [
    'config.yaml: issuers[0].requiredClaims.hd: expected a non-empty list of strings, got an empty list',
    'config.yaml: issuers[0].requiredClaims.tid: expected a string or a non-empty list of strings, got 5',
    'config.yaml: issuers[0].requiredClaims.x[1]: expected a string, got 2',
    'config.yaml: issuers[0].claimMapping.email: expected a non-empty claim path, got an empty string'
  ])
})

t.test('cross-field checks', async (t) => {
  t.same(problemsOf(() => parse({
    server: { bodyLimit: 8192 },
    jwks: { minFreshnessSeconds: 600, defaultFreshnessSeconds: 30, backoffInitialSeconds: 600, backoffMaxSeconds: 60 },
    issuers: [minimalIssuer()]
  })), [
    'config.yaml: server.maxTokenBytes: expected less than server.bodyLimit (8192), got 16384 (the default)',
    'config.yaml: jwks.defaultFreshnessSeconds: expected from jwks.minFreshnessSeconds (600) to jwks.maxFreshnessSeconds (86400), got 30',
    'config.yaml: jwks.backoffInitialSeconds: expected at most jwks.backoffMaxSeconds (60), got 600'
  ])
  t.same(problemsOf(() => parse({ server: { bodyLimit: 4096, maxTokenBytes: 4096 }, jwks: { minFreshnessSeconds: 7200, maxFreshnessSeconds: 3600 }, issuers: [minimalIssuer()] })), [
    'config.yaml: server.maxTokenBytes: expected less than server.bodyLimit (4096), got 4096',
    'config.yaml: jwks.minFreshnessSeconds: expected at most jwks.maxFreshnessSeconds (3600), got 7200'
  ])
  t.same(problemsOf(() => parse({ server: { trustProxy: ['10.0.0.0/33', 'proxy.internal', '192.168.0.0/255.255.0.0', 'fd00::/8', true] }, issuers: [minimalIssuer()] })), [
    'config.yaml: server.trustProxy[4]: expected an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal, got true',
    'config.yaml: server.trustProxy[0]: expected an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal, got "10.0.0.0/33"',
    'config.yaml: server.trustProxy[1]: expected an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal, got "proxy.internal"'
  ])
  t.equal(parse({ server: { trustProxy: true }, issuers: [minimalIssuer()] }).server.trustProxy, true)
})

t.test('no issuers configured', async (t) => {
  const problems = problemsOf(() => loadConfig({ argv: [], env: {} }))
  t.same(problems, [
    'no issuers configured: pass --config PATH (or set OIDC_VERIFIER_CONFIG) to load a YAML or JSON configuration file, ' +
    'or set OIDC_ISSUER and OIDC_AUDIENCE (optionally OIDC_JWKS_URI, OIDC_ALGORITHMS, OIDC_ISSUER_ID) to verify tokens of a single issuer'
  ])
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_AUDIENCE: 'a', PORT: 'x' } })).length, 2, 'environment problems are reported too')
})

t.test('a config file and OIDC_ISSUER together are ambiguous', async (t) => {
  const dir = t.testdir({ 'c.yaml': 'issuers: [{ id: a, issuer: "https://a.example", audiences: [x] }]\n' })
  const path = join(dir, 'c.yaml')
  t.same(problemsOf(() => loadConfig({ argv: ['--config', path], env: { OIDC_ISSUER: 'https://b.example' } })), [
    `environment: OIDC_ISSUER: ambiguous: environment-only issuer settings cannot be combined with a config file (${path}, from --config); configure the issuers in the file, or unset it`
  ])
  t.same(problemsOf(() => loadConfig({ argv: [], env: { OIDC_VERIFIER_CONFIG: path, OIDC_ISSUER: 'https://b.example', OIDC_AUDIENCE: 'x' } })), [
    `environment: OIDC_ISSUER, OIDC_AUDIENCE: ambiguous: environment-only issuer settings cannot be combined with a config file (${path}, from OIDC_VERIFIER_CONFIG); configure the issuers in the file, or unset them`
  ])
})

t.test('files that cannot be read or parsed', async (t) => {
  const dir = t.testdir({
    'bad.yaml': 'issuers:\n  - id: a\n    audiences: [x, y\n  - id: b\n',
    'dup.yaml': 'issuers: []\nissuers: []\n',
    'multi.yaml': '---\nissuers: []\n---\nfoo: 1\n',
    'bad.json': '{\n  "issuers": [\n    { "id": "a", },\n  ]\n}\n',
    'dup.json': '{ "issuers": [],\n  "issuers": [] }',
    'comment.json': '// no comments in JSON\n{}',
    'empty.yaml': '',
    'comments.yaml': '# nothing here\n\n',
    'config.toml': 'x = 1',
    sub: {}
  })
  const load = (name: string) => problemsOf(() => loadConfig({ argv: ['--config', join(dir, name)], env: {} }))

  // yaml's own words where they quote nothing.
  const yamlWords = (text: string): string[] => problemsOf(() => loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => text }))
  const load2 = (text: string): Config => loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => text })
  t.match(yamlWords('server:\n  port: 1\n  logLevel info\n'), [/invalid YAML: Implicit map keys need to be followed by map values/])
  t.match(yamlWords('server:\n  logLevel info\n  port: 1\n'), [/invalid YAML: Implicit keys need to be on a single line/])
  t.match(yamlWords('issuers:\n  - id: a\n    audiences: [app, other\n'), [/invalid YAML: .*must be sufficiently indented and end with a \]/])
  t.match(yamlWords('server: a: b\n'), [/invalid YAML: Nested mappings are not allowed in compact mappings/])
  // yaml bounds how many aliases there are, not what each repeats: 99 of a 500000-item list ran out of heap.
  const big = Array.from({ length: 20000 }, (_, i) => `a${i}`).join(', ')
  const repeated = `issuers:\n  - id: a\n    issuer: https://idp.example\n    audiences: &all [${big}]\n` +
    Array.from({ length: 9 }, (_, i) => `  - {id: b${i}, issuer: "https://idp${i}.example", audiences: *all}\n`).join('')
  t.same(yamlWords(repeated), ['c.yaml: invalid YAML: aliases (*name) repeat more than 100000 values; expected a configuration that anchors small parts (write large lists out)'])
  t.equal(load2(`issuers:\n  - &a {id: a, issuer: https://idp.example, audiences: &aud [x, y]}\n  - {id: b, issuer: https://idp.example, audiences: [z], authorizedParties: *aud}\n`).issuers.length, 2, 'small anchors are fine')
  // Nesting deeper than the parser's stack: what to fix, once, rather than "Maximum call stack size exceeded" (twice).
  for (const depth of [3000, 9000]) {
    t.match(yamlWords(`issuers:\n  - id: a\n    issuer: https://idp.example\n    audiences: [x]\n    requiredClaims: {a: ${'['.repeat(depth)}${']'.repeat(depth)}}\n`),
      [/^c\.yaml: line 5, column \d+: invalid YAML: the values nest too deeply \(a configuration nests a few levels\); look for "\[" or "\{" that open more lists or mappings than meant$/], `nested ${depth} deep`)
  }
  // A YAML error never quotes the text at fault: it may be a secret (problems are printed, and logged on reload).
  const secret = 'S3cr3t-client-secret-value-0123456789'
  for (const lead of ['*', '|', '>', ']', '}', '!', '@', '`', '%', '&', '"', "'"]) {
    const text = `issuers:\n  - id: a\n    issuer: https://idp.example\n    audiences: [client-1]\n    algorithms: [HS256]\n    clientSecret: ${lead}${secret}\n`
    const problems = problemsOf(() => loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => text }))
    t.ok(problems.length > 0 && problems.every((p) => !p.includes(secret) && !p.includes(secret.slice(0, 12))), `a secret starting with ${lead}: ${problems[0] ?? 'no problem'}`)
  }

  const yaml = load('bad.yaml')
  t.equal(yaml.length, 1)
  t.match(yaml[0], new RegExp(`^${join(dir, 'bad.yaml').replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}: line 4, column \\d+: invalid YAML: `))
  t.same(load('multi.yaml'), [`${join(dir, 'multi.yaml')}: line 3, column 1: invalid YAML: the file contains several documents (---); expected exactly one`])
  t.same(load('dup.yaml'), [`${join(dir, 'dup.yaml')}: line 2, column 1: invalid YAML: Map keys must be unique`])
  t.same(load('bad.json'), [`${join(dir, 'bad.json')}: line 3, column 18: invalid JSON: unexpected "}", expected a string in double quotes (an object key)`])
  t.same(load('dup.json'), [`${join(dir, 'dup.json')}: line 2, column 3: invalid JSON: duplicate key "issuers"`])
  t.same(load('comment.json'), [`${join(dir, 'comment.json')}: line 1, column 1: invalid JSON: unexpected "/", expected a value`])
  t.same(load('empty.yaml'), [`${join(dir, 'empty.yaml')}: the file is empty; expected a configuration with at least "issuers"`])
  t.same(load('comments.yaml'), [`${join(dir, 'comments.yaml')}: the file is empty (only comments); expected a configuration with at least "issuers"`])
  t.same(load('config.toml'), [`${join(dir, 'config.toml')}: expected a file name ending in .yaml, .yml or .json (the extension selects the format)`])
  t.same(load('missing.yaml'), [`${join(dir, 'missing.yaml')}: cannot read the file: no such file`])
  t.same(load('sub/../sub'), [`${join(dir, 'sub')}: expected a file name ending in .yaml, .yml or .json (the extension selects the format)`])

  // File problems and environment problems together.
  t.same(problemsOf(() => loadConfig({ argv: ['--config', '/nonexistent/oidc.yaml'], env: { LOG_LEVEL: 'loud' } })), [
    '/nonexistent/oidc.yaml: cannot read the file: no such file',
    'environment: LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"'
  ])
})

t.test('--config on the command line', async (t) => {
  const readFile = () => 'issuers: [{ id: a, issuer: "https://a.example", audiences: [x] }]'
  t.equal(loadConfig({ argv: ['--config', 'a.yaml'], env: {}, readFile }).source, 'a.yaml')
  // What follows "--" would be ignored: `node dist/server.js -- --config PATH` started from the environment, without the file.
  const afterEnd = (arg: string): string => `command line: ${arg}: after "--", which ends the options; expected --config PATH before it, or no "--"`
  t.same(problemsOf(() => loadConfig({ argv: ['--config=a.yaml', '--', 'anything'], env: {}, readFile })), [afterEnd('"anything"')], 'nothing after -- is ignored in silence')
  t.same(problemsOf(() => loadConfig({ argv: ['--', '--config', '/nonexistent/c.yaml'], env: { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'x' }, readFile })),
    [afterEnd('"--config"'), afterEnd('"/nonexistent/c.yaml"')])
  t.equal(loadConfig({ argv: ['--config=a.yaml', '--'], env: {}, readFile }).source, 'a.yaml', 'a "--" with nothing after it')
  // A token put where the path goes is never quoted (stderr ends up in CI and job logs).
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl'
  for (const argv of [['--config', token], [`--config=${token}`], [token], ['--', token]]) {
    const problems = problemsOf(() => loadConfig({ argv, env: {}, readFile }))
    t.notMatch(problems.join('\n'), 'eyJ', `${argv.length} argument(s): not quoted`)
    t.match(problems.join('\n'), /an argument of 52 characters that looks like a token \(not shown\)/)
  }
  t.same(problemsOf(() => loadConfig({ argv: ['--config'], env: {}, readFile })), ['command line: --config: expected a file path'])
  const unknown = (arg: string): string => `command line: ${JSON.stringify(arg)}: unknown argument; expected only --config PATH (or none, with OIDC_VERIFIER_CONFIG or the OIDC_* variables)`
  t.same(problemsOf(() => loadConfig({ argv: ['--config', '--verbose'], env: {}, readFile })), ['command line: --config: expected a file path', unknown('--verbose')])
  // A misspelt --config or a bare path would otherwise start the service from the environment (OIDC_*), without the file.
  const env = { OIDC_ISSUER: 'https://a.example', OIDC_AUDIENCE: 'x' }
  t.same(problemsOf(() => loadConfig({ argv: ['--confg', 'a.yaml'], env, readFile })), [unknown('--confg'), unknown('a.yaml')])
  t.same(problemsOf(() => loadConfig({ argv: ['/etc/oidc-verifier/config.yaml'], env, readFile })), [unknown('/etc/oidc-verifier/config.yaml')])
  t.same(problemsOf(() => loadConfig({ argv: ['serve', '--config', 'a.yaml'], env: {}, readFile })), [unknown('serve')])
  t.same(problemsOf(() => loadConfig({ argv: [`--${'x'.repeat(100)}`], env, readFile })), [unknown(`--${'x'.repeat(58)}...`)], 'a long one is cut')
  t.same(problemsOf(() => loadConfig({ argv: ['--config=a.yaml', '--config', 'b.yaml'], env: {}, readFile })), [
    'command line: --config: given 2 times; expected it once'
  ])
})

t.test('claim paths and the JWKS cache bound are checked against the issuers', async (t) => {
  const doc = {
    jwks: { maxEntries: 1 },
    issuers: [
      { id: 'a', issuer: 'https://a.example.com', audiences: ['x'], claimMapping: { groups: 'realm_access..roles', roles: '["https://example.com/roles"]' } },
      { id: 'b', issuer: 'https://b.example.com', audiences: ['x'] }
    ]
  }
  const err = t.throws(() => parseConfig(doc, 'c.yaml', {})) as unknown as ConfigError
  t.match(err.problems.join('\n'), /c\.yaml: issuers\[0\]\.claimMapping\.groups: expected a claim path/)
  t.notMatch(err.problems.join('\n'), /claimMapping\.roles/, 'a quoted name with dots and slashes is valid')
  t.match(err.problems.join('\n'), /c\.yaml: jwks\.maxEntries: expected at least 4: one per JWKS URL \(2\), and one more per provider found by discovery \(2\), for the new key set while a moved jwks_uri is followed; got 1 \(leave it out for a bound that follows the issuers\)/)
  // A jwksUri needs one entry; a discovered issuer two (its moved jwks_uri is loaded before the old one goes).
  const bound = (maxEntries: number) => configProblems({
    jwks: { maxEntries },
    issuers: [
      { id: 'a', issuer: 'https://a.example.com', audiences: ['x'] },
      { id: 'b', issuer: 'https://b.example.com', audiences: ['x'], jwksUri: 'https://b.example.com/jwks' },
      { id: 'c', issuer: 'https://c.example.com', audiences: ['x'], jwks: { keys: [] } }
    ]
  }).filter((p) => p.includes('jwks.maxEntries'))
  t.same(bound(3), [])
  t.equal(bound(2).length, 1)
  t.match(bound(2)[0], /expected at least 3: one per JWKS URL \(2\), and one more per provider found by discovery \(1\)/)
  // Left out, the bound follows the issuers: many providers load, issuers that share a URL share its entry.
  const many = Array.from({ length: 60 }, (_, i) => ({ id: `i${i}`, issuer: `https://idp${i}.example.com`, audiences: ['x'] }))
  t.equal(parseConfig({ issuers: many }, 'c.yaml', {}).jwks.maxEntries, 120, 'two per discovered provider')
  const shared = Array.from({ length: 150 }, (_, i) => ({ id: `s${i}`, issuer: `https://s${i}.example.com`, audiences: ['x'], jwksUri: 'https://keys.example.com/jwks' }))
  t.equal(parseConfig({ issuers: shared }, 'c.yaml', {}).jwks.maxEntries, 100, 'one URL: the default')
  t.same(configProblems({ jwks: { maxEntries: 1 }, issuers: shared }).filter((p) => p.includes('maxEntries')), [], 'one URL, one entry')
})

t.test('a secret put where a variable name or a hash belongs is never quoted back', async (t) => {
  const SECRET = 'Sup3rS3cretValue'
  const cases: Array<[string, Record<string, unknown>]> = [
    ['revocation.redis.urlEnv', { revocation: { enabled: true, store: 'redis', redis: { urlEnv: `redis://:${SECRET}@redis.internal:6379/0` } } }],
    ['callers.keys[0].sha256Env', { callers: { keys: [{ id: 'svc', sha256Env: `my raw key ${SECRET}` }] } }],
    ['issuers[0].clientSecretEnv', { issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecretEnv: `${SECRET}-pasted` })] }]
  ]
  for (const [setting, doc] of cases) {
    const problems = problemsOf(() => parse({ issuers: [minimalIssuer()], ...doc }))
    t.ok(problems.some((p) => p.includes(setting)), `${setting} is reported`)
    t.notOk(problems.join('\n').includes(SECRET), `${setting}: the value is not quoted`)
  }
  const numeric = problemsOf(() => parse({ issuers: [minimalIssuer({ algorithms: ['HS256'], clientSecret: 1.2345e40 })] }))
  t.ok(numeric.some((p) => p.includes('clientSecret')), 'a secret written as a number is refused')
  t.notOk(numeric.join('\n').includes('1.2345'), 'and not quoted')
})

t.test('a requiredClaims name with a line break is checked like any other', async (t) => {
  const problems = problemsOf(() => parse({ issuers: [minimalIssuer({ requiredClaims: { 'a\nb': 5 } })] }))
  t.equal(problems.length, 1, 'a problem, not a crash')
  t.match(problems[0], /requiredClaims/)
  t.equal(parse({ issuers: [minimalIssuer({ requiredClaims: { 'a\nb': ['x'] } })] }).issuers[0]!.requiredClaims['a\nb']?.[0], 'x', 'a well-formed value is taken')
})

t.test('a configuration file that is not UTF-8, or far too large, is a problem', async (t) => {
  const dir = t.testdir({
    'latin1.yaml': Buffer.concat([Buffer.from('issuers:\n  - id: a\n    issuer: https://a.example\n    audiences: [x]\n    requiredClaims:\n      hd: [ex'), Buffer.from([0xe4]), Buffer.from('mple.com]\n')]),
    'huge.yaml': `# ${'x'.repeat(MAX_CONFIG_FILE_BYTES)}\n`
  })
  t.match(problemsOf(() => loadConfig({ argv: ['--config', join(dir, 'latin1.yaml')], env: {} })), [/latin1\.yaml: cannot read the file: it is not valid UTF-8 text/])
  t.match(problemsOf(() => loadConfig({ argv: ['--config', join(dir, 'huge.yaml')], env: {} })), [/huge\.yaml: cannot read the file: it is larger than 4194304 bytes/])
})

t.test('a Redis URL that does not parse is a problem at load, not a failed start', async (t) => {
  const redisAt = (url: string): string[] => problemsOf(() => parse({ issuers: [minimalIssuer()], revocation: { enabled: true, store: 'redis', redis: { url } } }))
  for (const bad of ['redis://127.0.0.1:99999', 'redis://:S3cretPw@host:70000/0', 'redis://']) {
    const problems = redisAt(bad)
    t.match(problems, [/revocation\.redis\.url: expected a redis:\/\/ or rediss:\/\/ URL that parses/], bad)
    t.notOk(problems.join().includes('S3cretPw'), 'not quoted')
  }
  t.equal(parse({ issuers: [minimalIssuer()], revocation: { enabled: true, store: 'redis', redis: { url: 'redis://:pw@127.0.0.1:6379/0' } } }).revocation.enabled, true, 'a good one')
  t.match(problemsOf(() => parse({ issuers: [minimalIssuer()], revocation: { enabled: true, store: 'redis', redis: { urlEnv: 'R' } } }, { R: 'redis://host:0x' })),
    [/urlEnv: expected the value of R to be a redis:\/\/ or rediss:\/\/ URL/])
})

t.test('PORT may not make the main listener the ops listener\'s port', async (t) => {
  t.match(problemsOf(() => parse({ issuers: [minimalIssuer()], server: { opsPort: 9100 } }, { PORT: '9100' })),
    ['environment: PORT: expected a port other than server.opsPort (9100) of config.yaml'])
  t.equal(parse({ issuers: [minimalIssuer()], server: { opsPort: 9100 } }, { PORT: '9101' }).server.port, 9101)
})

t.test('"localhost" as a listen address is refused: Fastify would open a second listener (::1) the service cannot reach', async (t) => {
  t.match(problemsOf(() => parse({ issuers: [minimalIssuer()], server: { host: 'localhost' } })), [/server\.host: expected an address, not the name "localhost".*use 127\.0\.0\.1/])
  t.match(problemsOf(() => parse({ issuers: [minimalIssuer()], server: { opsPort: 9100, opsHost: 'localhost' } })), [/server\.opsHost: expected an address, not the name "localhost"/])
  t.match(problemsOf(() => parse({ issuers: [minimalIssuer()] }, { HOST: 'localhost' })), [/environment: HOST: expected an address, not the name "localhost"/])
  for (const host of ['127.0.0.1', '::1', '::', '0.0.0.0', 'verifier.internal']) {
    t.equal(parse({ issuers: [minimalIssuer()], server: { host } }).server.host, host, host)
  }
})

t.test('issuer URLs: a loopback-looking name is no loopback host; a user name or a password alone is refused', async (t) => {
  const url = (issuer: string) => problemsOf(() => parse({ issuers: [minimalIssuer({ issuer })] }))
  for (const host of ['127.0.0.1.evil.example', '127.0.0.1.nip.io', 'localhost.evil.example']) {
    t.same(url(`http://${host}/realm`), [
      `config.yaml: issuers[0].issuer: expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got "http://${host}/realm"`
    ], host)
  }
  t.same(url('https://S3cretUser@a.example'), ['config.yaml: issuers[0].issuer: expected a URL without a user name or password'], 'a user name alone')
  t.same(url('https://:S3cretPw@a.example'), ['config.yaml: issuers[0].issuer: expected a URL without a user name or password'], 'a password alone')
  // The parser drops an empty one, so the issuer would never equal a token's iss.
  for (const issuer of ['https://@a.example', 'https://:@a.example/realm', 'http://@127.0.0.1:8080']) {
    t.same(url(issuer), ['config.yaml: issuers[0].issuer: expected a URL without a user name or password'], `an empty one: ${issuer}`)
  }
  t.doesNotThrow(() => parse({ issuers: [minimalIssuer({ issuer: 'https://a.example/users/@me' })] }), 'an @ in the path is no user name')
})
