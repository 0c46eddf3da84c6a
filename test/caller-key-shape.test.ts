/**
 * A presented key is refused for its shape before it is hashed, even when its hash is configured: longer than
 * MAX_API_KEY_LENGTH, or with characters outside visible ASCII less the comma (Node joins repeated headers with
 * ", ", so "k1, k2" must not be one key).
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { CallerKeys, MAX_API_KEY_LENGTH } from '../src/auth/caller-keys.js'

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex')

t.test('shape first, whatever is configured', async (t) => {
  const ok = 'k'.repeat(MAX_API_KEY_LENGTH)
  const hostile = ['k'.repeat(MAX_API_KEY_LENGTH + 1), 'key-a, key-b', 'key a', 'key\ta', 'clé']
  const keys = new CallerKeys([ok, ...hostile].map((k, i) => ({ id: `c${i}`, sha256: sha256(k) })))
  t.match(keys.check(ok), { ok: true, caller: { id: 'c0' } }, 'the longest key allowed')
  for (const k of hostile) t.same(keys.check(k), { ok: false, code: 'caller_key_invalid' }, JSON.stringify(k.slice(0, 20)))
})

t.test('the edges of the allowed characters: "!" to "~" less the comma alone', async (t) => {
  const allowed = ['!key', 'key~', 'key+a', 'key-a']
  const refused = ['key-a,key-b', 'key\x7f', 'key ']
  const keys = new CallerKeys([...allowed, ...refused].map((k, i) => ({ id: `c${i}`, sha256: sha256(k) })))
  allowed.forEach((k, i) => t.match(keys.check(k), { ok: true, caller: { id: `c${i}` } }, JSON.stringify(k)))
  for (const k of refused) t.same(keys.check(k), { ok: false, code: 'caller_key_invalid' }, JSON.stringify(k))
  t.same(keys.check(''), { ok: false, code: 'caller_key_missing' }, 'an empty header is a missing key, not a guess')
})
