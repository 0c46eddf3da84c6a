/**
 * The forwardAuth and batch configuration sections: documented defaults, resolution of header names, and
 * every mistake reported with its path.
 */
import t from 'tap'
import { ConfigError, parseConfig } from '../src/config/load.js'
import { BATCH_DEFAULTS, FORWARD_AUTH_DEFAULTS, IDENTITY_HEADER_NAMES } from '../src/config/schema.js'
import { IDENTITY_HEADER_FIELDS, type Config } from '../src/config/types.js'

const issuers = [
  { id: 'google', issuer: 'https://accounts.google.com', audiences: ['client-1'] },
  { id: 'entra', issuer: 'https://login.example.com/v2.0', audiences: ['client-2'] }
]
const parse = (extra: Record<string, unknown>): Config => parseConfig({ issuers, ...extra }, 'config.yaml', {})

function problemsOf (extra: Record<string, unknown>): string[] {
  try {
    parse(extra)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

t.test('the documented defaults', async (t) => {
  t.same(FORWARD_AUTH_DEFAULTS, { headerPrefix: 'x-auth-', identityHeader: false, stripToken: false, keysUnavailableStatus: 401 })
  t.same(BATCH_DEFAULTS, { maxTokens: 100, maxBodyBytes: 1048576 })
  t.same(Object.keys(IDENTITY_HEADER_NAMES).sort(), [...IDENTITY_HEADER_FIELDS].sort(), 'a default name for every field')
  const config = parse({})
  t.same(config.forwardAuth.require, { groups: [], roles: [], audiences: [], issuers: [] })
  t.same(config.forwardAuth.rules, [])
  t.notOk('tokenCookie' in config.forwardAuth)
  t.notOk('tokenHeader' in config.forwardAuth)
  t.equal(config.forwardAuth.headers.emailVerified, 'x-auth-email-verified')
  t.same(config.batch, BATCH_DEFAULTS)
})

t.test('a full section resolves: prefix, explicit names (lower-cased), rules', async (t) => {
  const config = parse({
    forwardAuth: {
      tokenCookie: '__Host-id_token',
      tokenHeader: 'X-Id-Token',
      headerPrefix: 'X-User-Info-',
      headerNames: { subject: 'X-Remote-User', groups: 'X-Remote-Groups' },
      identityHeader: true,
      stripToken: true,
      keysUnavailableStatus: 503,
      require: { issuers: ['google'] },
      rules: [{ pathPrefix: '/admin', methods: ['POST', 'DELETE'], hosts: ['Admin.Example.com.'], require: { groups: ['admins'], audiences: ['client-2'] } }]
    },
    batch: { maxTokens: 10, maxBodyBytes: 65536 }
  })
  const fa = config.forwardAuth
  t.equal(fa.tokenCookie, '__Host-id_token')
  t.equal(fa.tokenHeader, 'x-id-token')
  t.equal(fa.headers.subject, 'x-remote-user')
  t.equal(fa.headers.groups, 'x-remote-groups')
  t.equal(fa.headers.email, 'x-user-info-email')
  t.equal(fa.headers.identity, 'x-user-info-identity')
  t.equal(fa.keysUnavailableStatus, 503)
  t.same(fa.rules, [{ pathPrefix: '/admin', methods: ['POST', 'DELETE'], hosts: ['admin.example.com'], require: { groups: ['admins'], roles: [], audiences: ['client-2'], issuers: [] } }])
  t.same(config.batch, { maxTokens: 10, maxBodyBytes: 65536 })
})

t.test('every mistake is reported with its path', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ forwardAuth: { tokenCooky: 'x' } }, /forwardAuth\.tokenCooky: unknown option \(did you mean "tokenCookie"\?\)/],
    [{ forwardAuth: { tokenCookie: 'a b' } }, /forwardAuth\.tokenCookie: expected a cookie name/],
    [{ forwardAuth: { tokenHeader: 'x_id' } }, /forwardAuth\.tokenHeader: expected a header name/],
    [{ forwardAuth: { tokenHeader: 'Authorization' } }, /forwardAuth\.tokenHeader: "authorization" is reserved/],
    [{ forwardAuth: { tokenHeader: 'x-auth-email' } }, /forwardAuth\.tokenHeader: "x-auth-email" is also the email identity header/],
    [{ forwardAuth: { headerPrefix: 'x auth' } }, /forwardAuth\.headerPrefix: expected a header name prefix/],
    [{ forwardAuth: { headerPrefix: 'x-forwarded-' } }, /forwardAuth\.headerPrefix: gives reserved header names \(x-forwarded-subject, x-forwarded-user-key, x-forwarded-issuer, /],
    [{ forwardAuth: { headerNames: { subject: 'Authorization' } } }, /forwardAuth\.headerNames\.subject: "authorization" is reserved/],
    [{ forwardAuth: { headerNames: { subject: 'X-Api-Key' } } }, /forwardAuth\.headerNames\.subject: "x-api-key" is reserved/],
    [{ forwardAuth: { headerNames: { name: 'x-auth-subject' } } }, /forwardAuth\.headerNames\.name: identity header "x-auth-subject" is used for both subject and name/],
    [{ forwardAuth: { headerNames: { sub: 'x-user' } } }, /forwardAuth\.headerNames\.sub: unknown option/],
    [{ forwardAuth: { keysUnavailableStatus: 500 } }, /forwardAuth\.keysUnavailableStatus: expected one of 401, 403, 503, got 500/],
    [{ forwardAuth: { identityHeader: 'yes' } }, /forwardAuth\.identityHeader: expected true or false/],
    [{ forwardAuth: { require: { issuers: ['okta'] } } }, /forwardAuth\.require\.issuers\[0\]: unknown issuer id "okta"; expected one of the configured issuers\[\]\.id \(google, entra\)/],
    [{ forwardAuth: { require: { audiences: ['client-9'] } } }, /forwardAuth\.require\.audiences\[0\]: "client-9" is not a configured audience/],
    [{ forwardAuth: { require: { groups: ['a', 'a'] } } }, /forwardAuth\.require\.groups\[1\]: duplicate value "a"/],
    [{ forwardAuth: { require: { groups: [''] } } }, /forwardAuth\.require\.groups\[0\]: expected a non-empty group name/],
    [{ forwardAuth: { require: { group: ['a'] } } }, /forwardAuth\.require\.group: unknown option \(did you mean "groups"\?\)/],
    [{ forwardAuth: { rules: [{ require: { groups: ['a'] } }] } }, /forwardAuth\.rules\[0\]: expected at least one of pathPrefix, methods or hosts/],
    [{ forwardAuth: { rules: [{ pathPrefix: '/a', require: {} }] } }, /forwardAuth\.rules\[0\]\.require: expected at least one group, role, audience or issuer/],
    [{ forwardAuth: { rules: [{ pathPrefix: '/a' }] } }, /forwardAuth\.rules\[0\]\.require: missing/],
    [{ forwardAuth: { rules: [{ pathPrefix: 'admin', require: { groups: ['a'] } }] } }, /forwardAuth\.rules\[0\]\.pathPrefix: expected a path starting with "\/"/],
    [{ forwardAuth: { rules: [{ pathPrefix: '/a?b', require: { groups: ['a'] } }] } }, /forwardAuth\.rules\[0\]\.pathPrefix: expected a path/],
    [{ forwardAuth: { rules: [{ methods: ['get'], require: { groups: ['a'] } }] } }, /forwardAuth\.rules\[0\]\.methods\[0\]: expected an upper-case HTTP method/],
    [{ forwardAuth: { rules: [{ hosts: ['a.example.com:443'], require: { groups: ['a'] } }] } }, /forwardAuth\.rules\[0\]\.hosts\[0\]: expected a host name without port/],
    [{ forwardAuth: { rules: [{ hosts: ['a'], require: { issuers: ['nope'] } }] } }, /forwardAuth\.rules\[0\]\.require\.issuers\[0\]: unknown issuer id "nope"/],
    [{ batch: { maxTokens: 0 } }, /batch\.maxTokens: expected an integer from 1 to 10000, got 0/],
    [{ batch: { maxBodyBytes: 4096 } }, /batch\.maxBodyBytes: expected more than server\.maxTokenBytes \(16384\)/],
    // The default batch limit (1 MiB) must hold a token of the maximum size too.
    [{ server: { bodyLimit: 2097152, maxTokenBytes: 1048576 } }, /server\.maxTokenBytes: expected less than batch\.maxBodyBytes \(1048576, the default\), so that a batch can hold one token of the maximum size, got 1048576; or set batch\.maxBodyBytes above it/],
    [{ batch: { max: 5 } }, /batch\.max: unknown option \(expected one of: maxTokens, maxBodyBytes\)/]
  ]
  for (const [extra, expected] of cases) {
    const problems = problemsOf(extra)
    t.ok(problems.some((p) => expected.test(p)), `${JSON.stringify(extra)}: ${problems.join(' | ')}`)
    t.ok(problems.every((p) => p.startsWith('config.yaml: ')), 'each names the file')
  }
})

t.test('a token limit of 1 MiB needs a batch limit above it', async (t) => {
  t.doesNotThrow(() => parse({ server: { bodyLimit: 2097152, maxTokenBytes: 1048576 }, batch: { maxBodyBytes: 2097152 } }))
  t.doesNotThrow(() => parse({ server: { bodyLimit: 2097152, maxTokenBytes: 1048575 } }), 'below the default batch limit')
})

t.test('all problems at once', async (t) => {
  const problems = problemsOf({ forwardAuth: { tokenHeader: 'cookie', require: { issuers: ['x'] }, rules: [{ require: {} }] }, batch: { maxTokens: -1 } })
  t.ok(problems.length >= 4, problems.join('\n'))
})

t.test('one mistake, one problem: what the schema walk reports is not reported again', async (t) => {
  t.same(problemsOf({ forwardAuth: { require: { issuers: [''] } } }),
    ['config.yaml: forwardAuth.require.issuers[0]: expected a non-empty configured issuer id, got an empty string'], 'an empty issuer id is not also an unknown one')
  t.same(problemsOf({ forwardAuth: { rules: [{ pathPrefix: '/a' }] } }),
    ['config.yaml: forwardAuth.rules[0].require: missing; expected a mapping with groups, roles, audiences and/or issuers'], 'a missing require is not also an empty one')
})

t.test('batch.maxBodyBytes must be more than server.maxTokenBytes, not equal to it', async (t) => {
  t.match(problemsOf({ batch: { maxBodyBytes: 16384 } }), [/batch\.maxBodyBytes: expected more than server\.maxTokenBytes \(16384\).*got 16384/])
  t.doesNotThrow(() => parse({ batch: { maxBodyBytes: 16385 } }))
})

t.test('x-real-ip is reserved as an identity header', async (t) => {
  t.match(problemsOf({ forwardAuth: { headerNames: { subject: 'X-Real-IP' } } }), [/forwardAuth\.headerNames\.subject: "x-real-ip" is reserved/])
  t.match(problemsOf({ forwardAuth: { tokenHeader: 'X-Real-IP' } }), [/forwardAuth\.tokenHeader: "x-real-ip" is reserved/])
})
