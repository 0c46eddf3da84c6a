/**
 * Duplicate member names in a token's JSON (src/core/json-members.ts): refused in the header and the claims of a
 * signed token (token_malformed, before any key is looked for) and in a JWE's protected header, at any depth, however
 * the names are spelled (escapes); never a false alarm on texts that only look like one (`\":` inside strings, names
 * repeated in different objects, whitespace around colons). The detector is checked against generated texts whose
 * duplicates are known by construction.
 */
import t from 'tap'
import { hasDuplicateMembers } from '../src/core/json-members.js'
import { parseCompactJws } from '../src/core/compact-jws.js'
import { Verifier } from '../src/core/verifier.js'
import { isVerificationError } from '../src/errors.js'
import { configFor } from './helpers/config.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const dup = (text: string): boolean => hasDuplicateMembers(text, JSON.parse(text))

t.test('texts with a name twice in one object', async (t) => {
  const texts = [
    '{"a":1,"a":2}',
    '{"a":1,"a":1}',
    '{"alg":"RS256","kid":"k","alg":"none"}',
    '{"a" :1,"a":2,"b":3}', // a colon after whitespace: counting `":` alone would see two members written, two kept
    '{"a"\n:1,\t"a"\r:2}',
    '{"a"\t:1,"a":2}', // a tab, a CR or an LF alone before a colon (a space: above)
    '{"a"\r:1,"a":2}',
    '{"a"\n:1,"a":2}',
    '{"x":{"a":1,"a":2}}',
    '{"x":[{"b":1},{"a":1,"c":{"d":[1,{"e":1,"e":1}]}}]}',
    '[{"a":1,"a":2}]',
    '{"a":1,"\\u0061":2}',
    '{"\\u0061":1,"\\u0061":2}',
    '{"a\\"b":1,"a\\u0022b":2}',
    '{"\\/":1,"/":2}',
    '{"__proto__":{},"__proto__":{}}',
    '{"constructor":1,"constructor":1}',
    '{"":1,"":2}',
    '{"é":1,"\\u00e9":2}',
    '{"note":"x\\":y","a":1,"a":2}', // `\":` in a value: the count alone cannot settle it
    '{"aud":["a","b"],"iss":"i","aud":"c"}'
  ]
  for (const text of texts) t.equal(dup(text), true, text)
})

t.test('texts without one', async (t) => {
  const texts = [
    '{}',
    '[]',
    '{"a":1}',
    '{"a":{"a":{"a":1}}}',
    '{"a":1,"b":{"a":1,"b":[{"a":1},{"a":1}]}}',
    '{"a":"\\":","b":"\\":\\":"}',
    '{"a" : 1 , "b" : 2}',
    '{ "a":"x :y", "b":"{\\"a\\":1,\\"a\\":2}" }',
    '{"a,":1,"a":2,"{":3,"}":4,"[":5,"]":6}',
    '{"A":1,"a":2}',
    '{"a":1,"a ":2," a":3}',
    '{"\\u0061":1,"b":2}',
    '{"x":[],"y":{},"z":[[],{}]}',
    '{"name":"Jane \\"JD\\" Doe","email":"j@example.com"}'
  ]
  for (const text of texts) t.equal(dup(text), false, text)
})

t.test('texts nested far deeper than the call stack goes (JSON.parse reads them) are answered, not a RangeError', async (t) => {
  const depth = 100_000
  t.equal(dup('['.repeat(depth) + ']'.repeat(depth)), false, 'arrays')
  t.equal(dup('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)), false, 'objects')
  t.equal(dup('[{"a":'.repeat(depth) + '{"b":1,"b":2}' + '}]'.repeat(depth)), true, 'a duplicate at the bottom')
})

t.test('generated texts: the detector agrees with duplicates placed by construction', async (t) => {
  // mulberry32: a seeded PRNG, so that a failure is replayed exactly.
  let seed = 0x0d0b1e
  const random = (): number => {
    seed = (seed + 0x6D2B79F5) >>> 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T
  const NAMES = ['a', 'b', 'aud', 'x":', '\\', '"', 'é', ' ', '', '{', ',']
  const space = (): string => pick(['', '', '', ' ', '\n', '\t ', '\r\n'])
  /** A name written as JSON, sometimes with every character escaped (\uXXXX). */
  const spell = (name: string): string => random() < 0.3
    ? `"${[...name].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`
    : JSON.stringify(name)
  const scalar = (): string => pick(['1', 'true', 'null', '"v"', '"\\":"', '"a\\",\\"a\\":"', '"{}[],:"', '-0.5e3'])
  /** A value as text, and whether it (at any depth) names a member twice in one object. */
  const value = (depth: number): [string, boolean] => {
    const r = random()
    if (depth > 3 || r < 0.4) return [scalar(), false]
    if (r < 0.6) {
      const items = Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1))
      return [`[${space()}${items.map(([text]) => text).join(`${space()},${space()}`)}${space()}]`, items.some(([, d]) => d)]
    }
    return object(depth)
  }
  const object = (depth: number): [string, boolean] => {
    const names = Array.from({ length: Math.floor(random() * 5) }, () => pick(NAMES))
    const members = names.map((name) => [name, value(depth + 1)] as const)
    const twice = new Set(names).size !== names.length
    const text = `{${space()}${members.map(([name, [v]]) => `${spell(name)}${space()}:${space()}${v}`).join(`${space()},${space()}`)}${space()}}`
    return [text, twice || members.some(([, [, d]]) => d)]
  }
  let withDuplicates = 0
  for (let i = 0; i < 3000; i++) {
    const [text, expected] = object(0)
    if (expected) withDuplicates++
    if (dup(text) !== expected) {
      t.fail(`case ${i}: ${text} should ${expected ? '' : 'not '}be found to name a member twice`)
      return
    }
  }
  t.ok(withDuplicates > 500 && withDuplicates < 2500, `both kinds generated (${withDuplicates} of 3000 with a duplicate)`)
})

t.test('the compact-JWS parser refuses a header or claims set that names a member twice', async (t) => {
  const sig = 'c2ln'
  const header = b64('{"alg":"ES256","kid":"k","alg":"none"}')
  const payload = b64('{"sub":"u","sub":"v"}')
  const plain = b64({ alg: 'ES256' })
  t.throws(() => parseCompactJws(`${header}.${b64({ sub: 'u' })}.${sig}`, 16384), { code: 'token_malformed' })
  t.throws(() => parseCompactJws(`${plain}.${payload}.${sig}`, 16384), { code: 'token_malformed' })
  t.throws(() => parseCompactJws(`${plain}.${b64('{"sub":"u","address":{"country":"a","country":"b"}}')}.${sig}`, 16384), { code: 'token_malformed' })
  t.same(parseCompactJws(`${plain}.${b64('{"sub" : "u", "note" : "\\":"}')}.${sig}`, 16384).payload, { sub: 'u', note: '":' })
})

t.test('a validly signed token that names a claim or header member twice is refused, the same token without it accepted', async (t) => {
  const ISS = 'https://idp.example.com'
  const key = makeKey('ES256', { kid: 'k1' })
  const verifier = new Verifier(configFor([{ id: 'idp', issuer: ISS, audiences: ['app'], algorithms: ['ES256'], jwks: jwksOf(key) }]))
  const claims = JSON.stringify(idTokenClaims(ISS, 'app', { sub: 'alice' }))
  const outcome = async (token: string): Promise<string> => {
    try {
      return `ok ${(await verifier.verify(token)).subject}`
    } catch (err) {
      return isVerificationError(err) ? err.code : `unexpected ${String(err)}`
    }
  }
  t.equal(await outcome(mint(key, {}, { rawPayload: claims })), 'ok alice')
  // The signature is good: only the repeated name refuses these.
  t.equal(await outcome(mint(key, {}, { rawPayload: claims.replace('{', '{"aud":"other",') })), 'token_malformed', 'aud twice: another parser would read "other"')
  t.equal(await outcome(mint(key, {}, { rawPayload: claims.replace('{', '{"sub":"mallory",') })), 'token_malformed', 'sub twice')
  t.equal(await outcome(mint(key, {}, { rawPayload: claims.replace('{', '{"\\u0073ub":"mallory",') })), 'token_malformed', 'sub twice, once escaped')
  t.equal(await outcome(mint(key, {}, { rawHeader: '{"alg":"HS256","alg":"ES256","kid":"k1","typ":"JWT"}', rawPayload: claims })), 'token_malformed', 'alg twice')
  t.equal(await outcome(mint(key, {}, { rawHeader: '{"alg":"ES256","kid":"other","kid":"k1"}', rawPayload: claims })), 'token_malformed', 'kid twice')
  // Spelled differently, said once: accepted.
  t.equal(await outcome(mint(key, {}, { rawHeader: '{ "alg" : "ES256" , "kid" : "k1" }', rawPayload: claims.replace('"sub":"alice"', '"\\u0073ub" : "alice", "note" : "a\\":b"') })), 'ok alice')
})
