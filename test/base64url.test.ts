/**
 * Strict base64url (src/core/base64url.ts) at the level of single characters: the url-safe characters '-' and
 * '_' carry their own values (62, 63), so a last character whose spare bits are set is refused whichever of
 * them it is, and the canonical spelling with them decodes to the bytes Node writes.
 */
import t from 'tap'
import { decodeBase64url, isBase64url } from '../src/core/base64url.js'

t.test("'-' and '_' as the last character: refused where their spare bits are set", async (t) => {
  // Two characters carry 12 bits for one byte (4 spare), three carry 18 bits for two bytes (2 spare).
  // '-' is 62 (0b111110), '_' is 63 (0b111111): both have spare bits set in either position.
  for (const text of ['A-', 'A_', 'AA-', 'AA_', 'AAAAA-', 'AAAAAA_']) {
    t.equal(isBase64url(text), false, `${text}: not the canonical spelling`)
    t.equal(decodeBase64url(text), undefined, `${text}: not decoded`)
  }
})

t.test("the canonical spellings with '-' and '_' decode as Node writes them", async (t) => {
  for (const bytes of [[0xfb], [0xff], [0xfb, 0xef], [0xff, 0xff], [0xfb, 0xef, 0xbe], [0xff, 0xff, 0xff], [0x00, 0xf8]]) {
    const buf = Buffer.from(bytes)
    const text = buf.toString('base64url')
    t.equal(isBase64url(text), true, `${text} is strict base64url`)
    t.same(decodeBase64url(text), buf, `${text} decodes to its bytes`)
  }
})
