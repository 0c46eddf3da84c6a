/**
 * The revocation section: defaults, the redis store's URL from the file or the environment, and every
 * problem reported with its path and without the URL (it may carry a password).
 */
import t from 'tap'
import { parseConfig } from '../src/config/load.js'
import { configProblems } from './helpers/config.js'

const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['a'], jwksUri: 'https://idp.example.com/jwks' }]

function problemsOf (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] {
  return configProblems({ ...doc, issuers }, env, 'test')
}

t.test('defaults: off; in memory when on', async (t) => {
  t.same(parseConfig({ issuers }, 'test', {}).revocation, { enabled: false, store: 'memory', maxEntries: 30000, retentionSeconds: 86400, maxSessionsPerUser: 20, logoutTokenMaxAgeSeconds: 300, logoutRateLimit: { max: 6000, windowSeconds: 60 } })
  t.same(parseConfig({ issuers, revocation: { logoutRateLimit: { max: 5 } } }, 'test', {}).revocation.logoutRateLimit, { max: 5, windowSeconds: 60 })
  t.equal(parseConfig({ issuers, revocation: { enabled: true } }, 'test', {}).revocation.store, 'memory')
  const perUser = (maxEntries: number): number => parseConfig({ issuers, revocation: { maxEntries } }, 'test', {}).revocation.maxSessionsPerUser
  t.same([perUser(30000), perUser(210), perUser(200), perUser(30), perUser(5)], [20, 20, 19, 2, 1], 'the default is lowered to a tenth of a small list, less one, and 1 at least')
  t.equal(parseConfig({ issuers, revocation: { maxEntries: 10, maxSessionsPerUser: 1 } }, 'test', {}).revocation.maxSessionsPerUser, 1, 'what the default would be is accepted')
})

t.test('the redis store: url from the file or from urlEnv, with defaults', async (t) => {
  const fromFile = parseConfig({ issuers, revocation: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/2' } } }, 'test', {}).revocation
  t.same(fromFile.redis, { url: 'redis://127.0.0.1:6379/2', keyPrefix: 'oidc-verifier:', maxStalenessSeconds: 10, commandTimeoutMs: 1000 })
  for (const url of ['redis://x', 'redis://x/', 'redis://x:6379/0', 'rediss://u:p%25q@x:6380/15', 'redis://x/123']) {
    t.same(problemsOf({ revocation: { enabled: true, store: 'redis', redis: { url } } }), [], url)
  }
  const fromEnv = parseConfig({ issuers, revocation: { store: 'redis', redis: { urlEnv: 'REDIS_URL', keyPrefix: 'svc-a:', maxStalenessSeconds: 3 } } }, 'test', { REDIS_URL: 'rediss://u:secret@redis:6380' }).revocation
  t.match(fromEnv.redis, { url: 'rediss://u:secret@redis:6380', keyPrefix: 'svc-a:', maxStalenessSeconds: 3 })
  t.equal(parseConfig({ issuers, revocation: { store: 'memory' } }, 'test', {}).revocation.redis, undefined)
})

t.test('problems, each with its path, never quoting a URL', async (t) => {
  const cases: Array<[Record<string, unknown>, NodeJS.ProcessEnv, RegExp]> = [
    [{ store: 'redis' }, {}, /revocation\.redis: expected a redis section/],
    [{ store: 'redis', redis: {} }, {}, /revocation\.redis: expected url .* or urlEnv/],
    [{ store: 'redis', redis: { url: 'redis://a:1', urlEnv: 'X' } }, { X: 'redis://b' }, /mutually exclusive/],
    [{ store: 'redis', redis: { urlEnv: 'REDIS_URL' } }, {}, /revocation\.redis\.urlEnv: expected environment variable REDIS_URL to hold the Redis URL, but it is not set/],
    [{ store: 'redis', redis: { urlEnv: 'REDIS_URL' } }, { REDIS_URL: 'http://secret-password@x' }, /expected the value of REDIS_URL to be a redis:\/\/ or rediss:\/\/ URL/],
    [{ redis: { url: 'redis://a:1' } }, {}, /revocation\.store: expected store: redis when a redis section is given/],
    [{ store: 'redis', redis: { url: 'http://user:hunter2@x' } }, {}, /revocation\.redis\.url/],
    // The path is a database number: ioredis sends SELECT for anything else, fails, and carries on in database 0.
    [{ store: 'redis', redis: { url: 'redis://x:6379/abc' } }, {}, /revocation\.redis\.url: expected .*a database number as its path/],
    [{ store: 'redis', redis: { url: 'redis://x:6379/1/2' } }, {}, /revocation\.redis\.url: expected .*a database number/],
    [{ store: 'redis', redis: { url: 'redis://x:6379/-1' } }, {}, /revocation\.redis\.url: expected .*a database number/],
    // ioredis percent-decodes the password, and a lone "%" throws at start-up with a message naming nothing.
    [{ store: 'redis', redis: { url: 'redis://:Xy%7qSecret@x:6379' } }, {}, /revocation\.redis\.url: expected .*"%" in a password written %25/],
    [{ store: 'redis', redis: { urlEnv: 'REDIS_URL' } }, { REDIS_URL: 'redis://user%zz:pw@x' }, /expected the value of REDIS_URL .*"%" in a password written %25/],
    [{ store: 'disk' }, {}, /revocation\.store/],
    [{ maxEntries: 0 }, {}, /revocation\.maxEntries/],
    [{ retentionSeconds: 10 }, {}, /revocation\.retentionSeconds/],
    [{ maxSessionsPerUser: 0 }, {}, /revocation\.maxSessionsPerUser: expected an integer from 1/],
    [{ maxEntries: 200, maxSessionsPerUser: 20 }, {}, /revocation\.maxSessionsPerUser: expected at most 19, so that one user holds at most a tenth of revocation\.maxEntries \(200\), got 20/],
    [{ maxEntries: 1000, maxSessionsPerUser: 100 }, {}, /revocation\.maxSessionsPerUser: expected at most 99/],
    [{ maxEntries: 10, maxSessionsPerUser: 2 }, {}, /revocation\.maxSessionsPerUser: expected at most 1, so that one user holds at most a tenth/],
    [{ logoutTokenMaxAgeSeconds: 0 }, {}, /revocation\.logoutTokenMaxAgeSeconds/],
    [{ logoutRateLimit: { max: 0 } }, {}, /revocation\.logoutRateLimit\.max/],
    [{ logoutRateLimit: { burst: 1 } }, {}, /revocation\.logoutRateLimit/],
    [{ store: 'redis', redis: { url: 'redis://x', keyPrefix: 'has space' } }, {}, /revocation\.redis\.keyPrefix/],
    [{ store: 'redis', redis: { url: 'redis://x', maxStalenessSeconds: 0 } }, {}, /revocation\.redis\.maxStalenessSeconds/],
    // A silent Redis is noticed at most one PING interval (a third of maxStalenessSeconds, 250 ms to 5 s) plus
    // commandTimeoutMs after its last answer: that must fit in maxStalenessSeconds.
    [{ store: 'redis', redis: { url: 'redis://x', maxStalenessSeconds: 1 } }, {}, /revocation\.redis\.commandTimeoutMs: expected at most 667 ms, revocation\.redis\.maxStalenessSeconds \(1 s\) less the 333 ms between the PINGs .*, got 1000 \(the default\)/],
    [{ store: 'redis', redis: { url: 'redis://x', maxStalenessSeconds: 3, commandTimeoutMs: 2001 } }, {}, /revocation\.redis\.commandTimeoutMs: expected at most 2000 ms/],
    [{ store: 'redis', redis: { url: 'redis://x', maxStalenessSeconds: 60, commandTimeoutMs: 55_001 } }, {}, /revocation\.redis\.commandTimeoutMs: expected at most 55000 ms, .*less the 5000 ms/],
    [{ unknown: true }, {}, /revocation\.unknown|revocation: .*unknown/]
  ]
  for (const [revocation, env, expected] of cases) {
    const problems = problemsOf({ revocation }, env)
    t.match(problems.join('\n'), expected, JSON.stringify(revocation))
    t.notMatch(problems.join('\n'), /hunter2|secret-password/, 'no secret in a message')
  }
  t.same(problemsOf({ revocation: { enabled: false, store: 'redis' } }), [], 'a disabled redis store needs no URL')
  for (const redis of [{ maxStalenessSeconds: 3, commandTimeoutMs: 2000 }, { maxStalenessSeconds: 1, commandTimeoutMs: 667 }, { maxStalenessSeconds: 60, commandTimeoutMs: 55_000 }, {}]) {
    t.same(problemsOf({ revocation: { enabled: true, store: 'redis', redis: { url: 'redis://x', ...redis } } }), [], `commandTimeoutMs within bounds: ${JSON.stringify(redis)}`)
  }
})

t.test('callers.keys[].revoke', async (t) => {
  const callers = { keys: [{ id: 'ops', sha256: 'a'.repeat(64), revoke: true }, { id: 'web', sha256: 'b'.repeat(64) }] }
  const config = parseConfig({ issuers, callers }, 'test', {})
  t.equal(config.callers.keys[0]?.revoke, true)
  t.notOk('revoke' in (config.callers.keys[1] as object))
  t.match(problemsOf({ callers: { keys: [{ id: 'ops', sha256: 'a'.repeat(64), revoke: 'yes' }] } }).join('\n'), /callers\.keys\[0\]\.revoke/)
})

