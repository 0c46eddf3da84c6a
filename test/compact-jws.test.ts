/**
 * The strict compact-JWS parser (src/core/compact-jws.ts), exhaustively on the encoding rules: canonical
 * unpadded base64url only (every non-canonical spelling of the last character is refused, in each segment and
 * at each length), UTF-8 JSON objects only (invalid UTF-8, a BOM, non-objects are refused).
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { MAX_JSON_DEPTH, isCompactJwe, nestsDeeperThan, parseCompactJws } from '../src/core/compact-jws.js'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const enc = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
const header = enc({ alg: 'ES256' })
const payload = enc({ sub: 'u' })
const parse = (token: string): unknown => parseCompactJws(token, 16384)

/** Every other spelling of a segment's last character that decodes to the same bytes (non-zero spare bits). */
function nonCanonicalSpellings (segment: string): string[] {
  const rest = segment.length % 4
  if (rest === 0) return []
  const spare = rest === 2 ? 0x0f : 0x03
  const value = ALPHABET.indexOf(segment.slice(-1))
  const out: string[] = []
  for (let bits = 1; bits <= spare; bits++) out.push(segment.slice(0, -1) + (ALPHABET[(value & ~spare) | bits] as string))
  return out
}

t.test('signatures of every length: canonical parses to the same bytes, every other spelling is refused', async (t) => {
  let refused = 0
  for (let length = 1; length <= 40; length++) {
    const bytes = randomBytes(length)
    const sig = bytes.toString('base64url')
    const parsed = parse(`${header}.${payload}.${sig}`) as { signature: Buffer }
    t.ok(parsed.signature.equals(bytes), `length ${length}`)
    for (const spelling of nonCanonicalSpellings(sig)) {
      t.throws(() => parse(`${header}.${payload}.${spelling}`), { code: 'token_malformed' }, `length ${length}: ${spelling.slice(-2)}`)
      refused++
    }
  }
  t.ok(refused > 100, `${refused} non-canonical spellings tried`)
})

t.test('header and payload: non-canonical spellings refused too', async (t) => {
  for (const [name, make] of [['header', (h: string) => `${h}.${payload}.AAAA`], ['payload', (p: string) => `${header}.${p}.AAAA`]] as const) {
    // Objects whose encodings end at each of the three possible positions.
    for (const value of [{ a: 1 }, { ab: 1 }, { abc: 1 }]) {
      const segment = enc(value)
      t.doesNotThrow(() => parse(make(segment)), `${name} ${segment.length % 4}`)
      for (const spelling of nonCanonicalSpellings(segment)) t.throws(() => parse(make(spelling)), { code: 'token_malformed' }, `${name}: ${spelling}`)
    }
  }
})

t.test('characters, padding and lengths outside canonical base64url', async (t) => {
  for (const sig of ['AAA=', 'AA==', 'AA+A', 'AA/A', 'AA A', 'AAAAA', 'AAé', 'A\u0000AA']) {
    t.throws(() => parse(`${header}.${payload}.${sig}`), { code: 'token_malformed' }, JSON.stringify(sig))
  }
})

t.test('header and payload must be UTF-8 JSON objects', async (t) => {
  const raw = (bytes: number[] | Buffer): string => Buffer.from(bytes).toString('base64url')
  const bad: Record<string, string> = {
    'invalid UTF-8': raw([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
    'overlong UTF-8': raw([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]),
    'lone surrogate (CESU)': raw([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]),
    'byte order mark': raw(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])),
    'array': enc([1]),
    'null': enc(null),
    'string': enc('x'),
    'number': enc(1),
    'truncated JSON': raw(Buffer.from('{"a":')),
    'empty': ''
  }
  for (const [name, segment] of Object.entries(bad)) {
    t.throws(() => parse(`${segment}.${payload}.AAAA`), { code: 'token_malformed' }, `header: ${name}`)
    t.throws(() => parse(`${header}.${segment}.AAAA`), { code: 'token_malformed' }, `payload: ${name}`)
  }
  const parsed = parse(`${header}.${enc({ name: 'Zoë 🙂' })}.AAAA`) as { payload: { name: string } }
  t.equal(parsed.payload.name, 'Zoë 🙂', 'valid multi-byte UTF-8 decodes')
})

t.test('JSON nesting: at most MAX_JSON_DEPTH levels, brackets inside strings not counted', async (t) => {
  const nested = (depth: number, open = '[', close = ']'): string => `${open.repeat(depth)}${close.repeat(depth)}`
  t.equal(MAX_JSON_DEPTH, 64)
  t.notOk(nestsDeeperThan(nested(64), 64), '64 levels')
  t.ok(nestsDeeperThan(nested(65), 64), '65 levels')
  t.ok(nestsDeeperThan(`{"a":${nested(64)}}`, 64), 'objects count too')
  t.ok(nestsDeeperThan(nested(65, '{"a":', '}').replace(/\{"a":\}/, '{}'), 64), 'nested objects')
  t.notOk(nestsDeeperThan(`{"a":"${'['.repeat(500)}"}`, 64), 'brackets in a string')
  const escaped = '{"a":"\\"' + '['.repeat(100) + '"}' // {"a":"\"[[[…"}: the quote after the backslash is inside the string
  t.equal(JSON.parse(escaped).a.length, 101, 'valid JSON: one string')
  t.notOk(nestsDeeperThan(escaped, 64), 'an escaped quote does not end the string')
  t.notOk(nestsDeeperThan(`[${'[],'.repeat(200)}[]]`, 64), 'many siblings are not depth')
  const b64 = (s: string): string => Buffer.from(s).toString('base64url')
  const sig = Buffer.alloc(64).toString('base64url')
  t.throws(() => parseCompactJws(`${b64('{"alg":"ES256"}')}.${b64(`{"x":${nested(64)}}`)}.${sig}`, 1 << 20), { code: 'token_malformed' }, 'a payload one level too deep')
  t.throws(() => parseCompactJws(`${b64(`{"alg":"ES256","x":${nested(64)}}`)}.${b64('{}')}.${sig}`, 1 << 20), { code: 'token_malformed' }, 'a header too')
  t.equal(parseCompactJws(`${b64('{"alg":"ES256"}')}.${b64(`{"x":${nested(63)}}`)}.${sig}`, 1 << 20).header.alg, 'ES256', '64 levels with the object itself')
})

t.test('segment counts, an empty signature, and the size bound', async (t) => {
  t.throws(() => parse(`${header}.${payload}.`), { code: 'token_malformed' }, 'an empty signature (alg none\'s form)')
  t.throws(() => parse(`${header}.${payload}.AAAA.AAAA.AAAA`), { code: 'token_encrypted' }, 'five segments: a JWE')
  t.throws(() => parse(`${header}.${payload}.AAAA.AAAA.AAAA.AAAA`), { code: 'token_malformed' }, 'six segments')
  t.same([isCompactJwe('a.b.c.d.e'), isCompactJwe('a.b.c.d.e.f'), isCompactJwe('a.b.c')], [true, false, false])
  const token = `${header}.${payload}.AAAA`
  t.equal(parseCompactJws(token, token.length).header.alg, 'ES256', 'exactly maxTokenBytes: read')
  t.throws(() => parseCompactJws(token, token.length - 1), { code: 'token_too_large' }, 'one byte more: refused')
})

t.test('JSON nesting: exactly MAX_JSON_DEPTH levels with more brackets than that in all is not too deep', async (t) => {
  const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`
  const wide = `[${nested(MAX_JSON_DEPTH - 1)},[]]` // depth 64, 65 opening brackets: past the quick count
  t.notOk(nestsDeeperThan(wide, MAX_JSON_DEPTH))
  t.ok(nestsDeeperThan(`[${nested(MAX_JSON_DEPTH)},[]]`, MAX_JSON_DEPTH))
  t.notOk(nestsDeeperThan(`[${'{"a":{}},'.repeat(100)}{}]`, MAX_JSON_DEPTH), 'many sibling objects are not depth')
})

t.test('a payload that is not JSON: token_malformed with nothing of the payload in the error (JSON.parse quotes its input)', async (t) => {
  const payload = Buffer.from('secret.person@privacy.example is not JSON').toString('base64url')
  let caught: unknown
  try { parse(`${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${payload}.AAAA`) } catch (err) { caught = err }
  t.match(caught, { code: 'token_malformed' })
  t.equal((caught as { cause?: unknown }).cause, undefined, 'no cause')
  t.notMatch(JSON.stringify(caught, Object.getOwnPropertyNames(caught as object)), /secret\.person/, 'nothing of the payload anywhere in the error')
})
