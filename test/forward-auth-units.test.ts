/**
 * The pure parts of forward-auth: header value encoding, cookie parsing, path forms for rules, and the
 * requirement query parser.
 */
import t from 'tap'
import { encodeHeaderList, encodeHeaderValue, identityHeaders } from '../src/http/identity-headers.js'
import { IDENTITY_HEADER_FIELDS } from '../src/config/types.js'
import type { VerifiedIdentity } from '../src/core/identity.js'
import { MAX_PATH_SEGMENTS, MAX_READING_LENGTH, MAX_READINGS, pathVariants, readOriginalRequest, ruleApplies, summarize } from '../src/http/original-request.js'
import { MAX_REQUIREMENT_PARAMS, parseRequirementQuery, rawQuery } from '../src/http/requirement-query.js'
import { cookieValues } from '../src/http/token-sources.js'
import { isVerificationError } from '../src/errors.js'

/** The encoding as it was specified: per code point, its UTF-8 bytes as %XX (the reference for the native one). */
function referenceEncoding (value: string): string {
  const chars = [...value]
  return chars.map((ch, i) => {
    const code = ch.codePointAt(0)!
    if (code >= 0x20 && code <= 0x7e && ch !== '%' && ch !== ',' && !(code === 0x20 && (i === 0 || i === chars.length - 1))) return ch
    return [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  }).join('')
}

t.test('header values: the same encoding as per code point, in native passes (not a loop per character)', async (t) => {
  const samples = [' ', '  ', ' a ', 'a ,%', '\ud800x\udc00', '\udc00\ud800', 'é\ud83d', '\u0000\u001f\u007f', '🎉 🎉', ' Zoë ']
  for (let i = 0; i < 300; i++) {
    samples.push(Array.from({ length: 12 }, (_, j) => String.fromCharCode((i * 7919 + j * 104729) % (j % 3 === 0 ? 0x80 : 0x10000))).join(''))
  }
  t.same(samples.filter((v) => encodeHeaderValue(v) !== referenceEncoding(v)).map((v) => JSON.stringify(v)), [])
  // A user's display name of thousands of non-ASCII characters is encoded on every forward-auth answer.
  const name = 'é'.repeat(4500)
  const calls = t.capture(Buffer, 'from', Buffer.from)
  const encoded = encodeHeaderValue(name)
  t.equal(calls().length, 0, 'no Buffer per character')
  t.equal(encoded, '%C3%A9'.repeat(4500))
})

t.test('header values: printable ASCII out, exact round trip, never a throw', async (t) => {
  const samples = ['plain', 'a,b', '100%', ' x ', 'x y', 'Zoë', '李雷', '\r\n', '\u0000', '\ud800', 'emoji 🎉', '"quoted"', '']
  for (let i = 0; i < 200; i++) {
    samples.push(String.fromCodePoint(...Array.from({ length: 8 }, (_, j) => (i * 7919 + j * 104729) % 0x2ffff)))
  }
  const wrong: string[] = []
  for (const value of samples) {
    const encoded = encodeHeaderValue(value)
    const wellFormed = !/[\ud800-\udfff]/.test(value.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))
    if (!/^[\x20-\x7e]*$/.test(encoded) || encoded.includes(',') || /^ | $/.test(encoded) || (wellFormed && decodeURIComponent(encoded) !== value)) {
      wrong.push(JSON.stringify(value))
    }
  }
  t.same(wrong, [], 'printable ASCII, no comma, no space at either end, and an exact round trip')
  t.equal(encodeHeaderValue('\ud800'), '%EF%BF%BD', 'a lone surrogate becomes U+FFFD, not an exception')
  t.equal(encodeHeaderList(['a', '', 'b,c']), 'a,b%2Cc')
  t.equal(encodeHeaderList([]), '')
})

t.test('identity headers: every value from a token or a configured URL is encoded, not only sub and userKey', async (t) => {
  const headers = Object.fromEntries(IDENTITY_HEADER_FIELDS.map((f) => [f, `x-${f}`])) as Record<typeof IDENTITY_HEADER_FIELDS[number], string>
  const identity = {
    issuer: { id: 'main', url: 'https://idp.example.com/t/a,b%20' },
    subject: 'user-1',
    userKey: 'user-1',
    user: { email: null, emailVerified: false, name: null },
    groups: [],
    groupsOverage: false,
    roles: [],
    tenant: 'Zoë, Ltd\r\n',
    claims: {}
  } as unknown as VerifiedIdentity
  const out = identityHeaders(identity, { headers, identityHeader: false })
  t.equal(out['x-issuer'], 'https://idp.example.com/t/a%2Cb%2520')
  t.equal(out['x-tenant'], 'Zo%C3%AB%2C Ltd%0D%0A')
  t.equal(out['x-name'], '', 'absent: empty')
})

t.test('cookies: exact names, quoted values, repeated names all returned', async (t) => {
  t.same(cookieValues('a=1; id=x; b=2', 'id'), ['x'])
  t.same(cookieValues('id="x"', 'id'), ['x'])
  t.same(cookieValues('id=x; id=y', 'id'), ['x', 'y'])
  t.same(cookieValues('ID=x;idx=y; id', 'id'), [])
  t.same(cookieValues(undefined, 'id'), [])
  t.same(cookieValues('id=a=b', 'id'), ['a=b'])
})

t.test('path forms: decoded, normalized, lower case; query dropped', async (t) => {
  t.same(pathVariants('/A/b?x=1'), ['/a/b'])
  t.ok(pathVariants('/x/../admin')?.includes('/admin'))
  t.ok(pathVariants('/%61dmin')?.includes('/admin'))
  t.ok(pathVariants('/%2561dmin')?.includes('/admin'), 'double encoding')
  t.ok(pathVariants('//admin//x')?.includes('/admin/x'))
  t.ok(pathVariants('/admin;a=b/x')?.includes('/admin/x'))
  t.ok(pathVariants('\\admin')?.includes('/admin'))
  t.ok((pathVariants('/%zz/%E4')?.length ?? 0) > 0, 'malformed escapes are kept, not thrown')
  t.ok(pathVariants('admin')?.includes('/admin'))
  const long = pathVariants('/a'.repeat(MAX_PATH_SEGMENTS))
  t.ok(long !== undefined && long.length > 0)
  // As a WHATWG URL parser reads them: "//host/path" and "/\host/path" have the path /path.
  t.ok(pathVariants('//evil.example/Admin/users')?.includes('/admin/users'))
  t.ok(pathVariants('/\\evil.example/admin')?.includes('/admin'))
  // A path no URL parser reads keeps its other forms ("//", "//v1.2/x": not a host).
  t.same(pathVariants('//?page=2'), ['//', '/'])
  t.ok(pathVariants('//v1.2/Items')?.includes('/v1.2/items'))
  t.ok(pathVariants('//[::1/admin')?.includes('/[::1/admin'))
})

t.test('path readings longer than MAX_READING_LENGTH together make the path unknown; copies count once', async (t) => {
  const half = `/${'a'.repeat(MAX_READING_LENGTH / 2 - 1)}`
  t.same(readOriginalRequest({ 'x-original-uri': half, 'x-forwarded-uri': half.toUpperCase() }).paths.length, 1, 'two readings of the bound together: read (one form, lower case)')
  t.same(readOriginalRequest({ 'x-original-uri': half, 'x-forwarded-uri': `${half}b` }).paths, [], 'one character more: unknown')
  t.same(readOriginalRequest({ 'x-original-uri': `${half}b`, 'x-forwarded-uri': `${half}b`, 'x-original-url': `https://app.example.com${half}b` }).paths, [`${half}b`], 'the same path in every header is one reading')
  t.same(readOriginalRequest({ 'x-original-uri': `${half}?q`, 'x-forwarded-uri': `${half.toUpperCase()}?${'q'.repeat(MAX_READING_LENGTH)}` }).paths.length, 1, 'queries are not counted')
  t.same(readOriginalRequest({ 'x-original-uri': half }, { method: 'GET', host: undefined, uri: `${half}b` }).paths, [], 'envoy\'s own path counts too')
  // Forms are made only while within the budget: three 8 KiB paths cost about 1 ms a request before.
  const p = `/%2e${'x'.repeat(MAX_READING_LENGTH - 8)}`
  t.same(readOriginalRequest({ 'x-original-uri': p, 'x-forwarded-uri': `${p}y`, 'x-original-url': `https://h${p}z` }).paths, [])
})

t.test('a path of more than MAX_PATH_SEGMENTS segments is not read (its forms would be normalized segment by segment)', async (t) => {
  t.equal(pathVariants('/a'.repeat(MAX_PATH_SEGMENTS + 1)), undefined, 'plain')
  t.equal(pathVariants('/a'.repeat(MAX_PATH_SEGMENTS) + '\\b'), undefined, 'backslashes count')
  t.equal(pathVariants('/x' + '%2Fa'.repeat(MAX_PATH_SEGMENTS)), undefined, 'decoded once')
  t.equal(pathVariants('/x' + '%252Fa'.repeat(MAX_PATH_SEGMENTS)), undefined, 'decoded twice')
  t.ok(pathVariants('/x' + '%2Fa'.repeat(MAX_PATH_SEGMENTS - 1))?.includes('/x' + '/a'.repeat(MAX_PATH_SEGMENTS - 1)), 'up to the bound: read')
  // The whole dimension becomes unknown, as for any reading that cannot be read in full (every path rule applies).
  const many = '/%2e' + '/a'.repeat(MAX_PATH_SEGMENTS)
  t.same(readOriginalRequest({ 'x-forwarded-uri': '/public', 'x-original-uri': many }).paths, [])
  t.same(readOriginalRequest({ 'x-original-url': `https://app.example.com${many}` }).paths, [])
  t.same(readOriginalRequest({}, { method: 'GET', host: undefined, uri: many }).paths, [], 'envoy\'s own path too')
})

t.test('readings: one that cannot be read in full makes its dimension unknown', async (t) => {
  const known = readOriginalRequest({ 'x-original-method': 'get', 'x-forwarded-host': 'A.example.com:443', 'x-forwarded-uri': '/x?q=1,2' })
  t.same([known.methods, known.hosts, known.paths], [['GET'], ['a.example.com'], ['/x']])
  const long = 'a'.repeat(MAX_READING_LENGTH + 1)
  t.same(readOriginalRequest({ 'x-original-method': `GET, ${long}` }).methods, [])
  t.same(readOriginalRequest({ 'x-forwarded-host': [long, 'a.example.com'] }).hosts, [])
  t.same(readOriginalRequest({ 'x-forwarded-uri': `/${long}` }).paths, [])
  t.same(readOriginalRequest({ 'x-original-url': `https://${long}/x` }).paths, [], 'an over-long URL: its path is unknown')
  t.same(readOriginalRequest({ 'x-original-url': `https://${long}/x` }).hosts, [], 'and its host')
  t.same(readOriginalRequest({ 'x-forwarded-uri': `/x?${long}` }).paths, ['/x'], 'the query is not measured')
  t.same(readOriginalRequest({ 'x-forwarded-uri': '/x', 'x-original-uri': `/${long}` }).paths, [], 'one unreadable reading is enough')
  // Pieces: Node joins header lines with ", "; a comma without the space (a query's list) makes none.
  t.same(readOriginalRequest({ 'x-forwarded-uri': '/public?files=/a,/b,/c' }).paths, ['/public'])
  t.same(readOriginalRequest({ 'x-forwarded-uri': '/public, /admin/x' }).paths.sort(), ['/admin/x', '/public', '/public, /admin/x', '/public,%20/admin/x'].sort())
  const files = Array.from({ length: 40 }, (_, i) => `/docs/f${i}.pdf`).join(',')
  t.same(readOriginalRequest({ 'x-forwarded-uri': `/public/export?files=${files}` }).paths, ['/public/export'], 'a long list in the query is one path')
  t.same(readOriginalRequest({ 'x-forwarded-host': 'a.example,b.example' }).hosts.sort(), ['a.example', 'a.example,b.example', 'b.example'], 'hosts: commas with or without the space')
  const pieces = (n: number): string => Array.from({ length: n }, (_, i) => `/p${i}`).join(', ')
  t.ok(readOriginalRequest({ 'x-forwarded-uri': pieces(MAX_READINGS - 1) }).paths.includes(`/p${MAX_READINGS - 2}`), 'the value and its pieces are read')
  t.same(readOriginalRequest({ 'x-forwarded-uri': pieces(MAX_READINGS) }).paths, [], 'one more is too many')
  t.ok(readOriginalRequest({ 'x-forwarded-host': Array.from({ length: MAX_READINGS }, (_, i) => `h${i}`) }).hosts.includes('h0'), 'lines count too')
  t.same(readOriginalRequest({ 'x-forwarded-host': Array.from({ length: MAX_READINGS + 1 }, (_, i) => `h${i}`) }).hosts, [], 'one line too many')
  const copies = readOriginalRequest({ 'x-forwarded-uri': Array(MAX_PATH_SEGMENTS).fill('/a').join(', ') }).paths
  t.ok(copies.includes('/a') && copies.length <= 4, `copies of a piece are one reading: ${copies.length} forms`)
  // The whole value is a reading too, and one of more than MAX_PATH_SEGMENTS segments is not read.
  t.same(readOriginalRequest({ 'x-forwarded-uri': Array(1999).fill('/a').join(', ') }).paths, [], 'thousands of copies: path unknown')
})

t.test('rules: an unknown dimension matches, a known one must match', async (t) => {
  const rule = { pathPrefix: '/admin', methods: ['POST'], hosts: ['a.example.com'], require: { groups: ['x'], roles: [], audiences: [], issuers: [] } }
  t.ok(ruleApplies(rule, readOriginalRequest({})), 'nothing known: applies')
  t.notOk(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/public' })))
  t.ok(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/admin' })))
  t.notOk(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/admin', 'x-original-method': 'GET' })))
  t.ok(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/admin', 'x-original-method': 'GET', 'x-forwarded-method': 'POST' })))
  t.notOk(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/admin', 'x-forwarded-host': 'b.example.com' })))
  t.ok(ruleApplies(rule, readOriginalRequest({ 'x-original-uri': '/admin', 'x-forwarded-host': 'b.example.com, a.example.com' })))
  t.ok(ruleApplies(rule, readOriginalRequest({ 'x-original-url': 'https://user@A.example.com:8443/admin/x?y' })))
  t.ok(ruleApplies(rule, readOriginalRequest({ 'x-forwarded-host': '[::1]:80' }, { method: 'POST', host: 'a.example.com', uri: '/admin' })))
  // pathPrefix is case-insensitive (the schema allows upper case): "/Admin" must still protect /admin and /ADMIN/x.
  const upper = { ...rule, pathPrefix: '/Admin', methods: [], hosts: [] }
  for (const uri of ['/admin', '/ADMIN/x', '/Admin/y']) t.ok(ruleApplies(upper, readOriginalRequest({ 'x-original-uri': uri })), `pathPrefix /Admin applies to ${uri}`)
  t.notOk(ruleApplies(upper, readOriginalRequest({ 'x-original-uri': '/public' })))
  // Every reading counts, and each is read as a backend may read it: none of these may escape the /admin rule.
  const admin = { ...rule, methods: [], hosts: [] }
  for (const [headers, why] of [
    [{ 'x-original-uri': '//x:99999/public/../admin' }, 'a path a WHATWG parser refuses still has its dot segments removed'],
    [{ 'x-original-uri': '/public, \\admin' }, 'a second header line that starts with a backslash is a reading of its own'],
    [{ 'x-original-uri': '/%61dmin/%ff' }, 'ASCII escapes are decoded even when another escape is not UTF-8']
  ] as const) {
    t.ok(ruleApplies(admin, readOriginalRequest(headers)), why)
  }
  // The host of X-Original-URL is a reading, beside X-Forwarded-Host's.
  const byHost = { methods: [], hosts: ['a.example.com'], require: rule.require }
  const both = readOriginalRequest({ 'x-original-url': 'https://a.example.com/x', 'x-forwarded-host': 'b.example.com' })
  t.same(both.hosts.toSorted(), ['a.example.com', 'b.example.com'])
  t.ok(ruleApplies(byHost, both), 'a rule for the host X-Original-URL names applies')
})

t.test('the requirement query', async (t) => {
  const known = { issuerIds: new Set(['main']), audiences: new Set(['aud']) }
  t.same(parseRequirementQuery('', known), { groups: [], roles: [], audiences: [], issuers: [] })
  t.same(parseRequirementQuery('group=a&group=a&group=b+c&role=r&audience=aud&issuer=main', known), { groups: ['a', 'b c'], roles: ['r'], audiences: ['aud'], issuers: ['main'] })
  for (const bad of ['x=1', 'group=', 'issuer=other', 'audience=x', 'Group=a', 'group[]=a', Array(MAX_REQUIREMENT_PARAMS + 1).fill('group=a').join('&')]) {
    try {
      parseRequirementQuery(bad, known)
      t.fail(`accepted ${bad.slice(0, 30)}`)
    } catch (err) {
      t.ok(isVerificationError(err) && err.code === 'requirement_invalid', bad.slice(0, 30))
    }
  }
  t.equal(rawQuery('/forward-auth?a=1#x'), 'a=1')
  t.equal(rawQuery('/forward-auth'), '')
})

t.test('the log summary: cut, redacted and bounded whatever the header holds', async (t) => {
  const path = (uri: string): string | null => summarize({ 'x-original-uri': uri }).path
  t.equal(path(`/${'a'.repeat(100_000)}`), '/[redacted]...', 'a 100,000-character piece: redacted, then cut')
  t.equal(path(`/x/${'b'.repeat(250)}/${'c'.repeat(40)}`), '/x/[redacted]/[redacted]', 'a secret just past the cut is still seen whole')
  t.equal(path('/files/report.2026-11.pdf;jsessionid=AB12'), '/files/report.2026-11.pdf', 'dotted names stay; path parameters go')
  t.equal(path('/p/eyJhbGciOiJFUzI1NiJ9.e30.c2ln'), '/p/[redacted]', 'a token whose payload and signature are short')
  t.equal(path('/cb/token=eyJhbGciOiJFUzI1NiJ9'), '/cb/[redacted]', 'after "="')
  t.equal(path('/s/abcdefghijklmno.pqrstuvwxyz012345.6789abcdefghijkl'), '/s/[redacted]', 'the dotted shape of a token, whatever its header')
  t.equal(path('/s/Ab3-dE5f-Gh7i-Jk9l-Mn1o-Pq2r-St4u'), '/s/[redacted]', 'a mixed-case secret with hyphens')
  // Ordinary paths are logged as they are.
  for (const ordinary of ['/x/KeyJohn', '/users/HarveyJones', '/orders/3f2b8c1e-9d4a-4e6b-8f0c-1a2b3c4d5e6f/items', '/orders/3F2B8C1E-9D4A-4E6B-8F0C-1A2B3C4D5E6F',
    '/blog/how-to-configure-single-sign-on-with-kubernetes', '/static/app.4f3c2a1b.js', '/v2/api.example.com/report.2026-11.pdf']) {
    t.equal(path(ordinary), ordinary, ordinary)
  }
  t.equal(summarize({ 'x-forwarded-host': 'feature-add-single-sign-on-support-team.preview.example.com' }).host, 'feature-add-single-sign-on-support-team.preview.example.com')
  t.equal(summarize({ 'x-forwarded-host': 'a-rather-long-service-name.team.namespace.svc.cluster.local' }).host, 'a-rather-long-service-name.team.namespace.svc.cluster.local', 'a long host name, dotted, stays')
  t.equal(path(`/${'%00'.repeat(20)}\u0001`), '/[redacted]?', 'percent escapes count as URL characters; control characters become ?')
  // Personal data and shorter secrets.
  t.equal(path('/users/secret.person@privacy.example/profile'), '/users/[redacted]/profile', 'an e-mail address in a segment')
  t.equal(path('/u/secret.person%40privacy.example'), '/u/[redacted]', 'escaped too')
  t.equal(path('/invite/Q2hhcmxpZSBJbnZpdGUgVG9r'), '/invite/[redacted]', 'a 24-character secret of letters and digits')
  t.equal(path('/reset/k3J9xQ2mZ8pL5vN1bR7wT4'), '/reset/[redacted]', '22 characters (a 128-bit base64url secret)')
  for (const ordinary of ['/settings/notificationpreferences', '/orders/ORD2024010100012/items', '/docs/AuthenticationOverview']) t.equal(path(ordinary), ordinary, ordinary)
  const secret = 'Zx9QmR4tLpW2vN8bK3hJ6cF1dS5gY7aE0uI3oP2qW4eR6tY8uI0oP1aS3dF5gH'
  // Seven redacted pieces shorten what is shown, so that the cut (at 256 + 64 characters read) goes through the
  // secret after them with 31 of its characters read: too few to look like a secret, yet within what is shown.
  const pieces = Array.from({ length: 7 }, (_, i) => `/${`K${i}m9Qx2Lp7Vb4`.repeat(3).slice(0, 40)}`).join('')
  const cutThrough = path(`${pieces}/abcdefg/${secret}`)
  t.notOk(cutThrough?.includes(secret.slice(0, 12)), `a secret the cut goes through is not logged in part: ${cutThrough}`)
  t.equal(summarize({ 'x-forwarded-host': 'secret.person@privacy.example' }).host, '[unreadable]', 'a host that is no host name is not repeated')
  t.equal(summarize({ 'x-forwarded-host': 'app.example.com:8443' }).host, 'app.example.com:8443')
})
