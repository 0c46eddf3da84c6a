/**
 * Strict base64url (RFC 7515 §2, RFC 4648 §5) for every JOSE segment we read: no padding, no character
 * outside the url-safe alphabet, and only the canonical spelling of the bytes, so that one token has one
 * text. Node's own decoder is lenient on all three.
 */

const BASE64URL = /^[A-Za-z0-9_-]*$/

/** A base64 character (either alphabet) → its 6-bit value; 0 for anything else. */
export const SEXTETS = new Uint8Array(128)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) SEXTETS[c.charCodeAt(0)] = i
SEXTETS['-'.charCodeAt(0)] = 62
SEXTETS['_'.charCodeAt(0)] = 63

/** Whether a text is strict base64url (the empty text is: zero bytes), without decoding it. */
export function isBase64url (text: string): boolean {
  const rest = text.length % 4
  if (rest === 1 || !BASE64URL.test(text)) return false
  // Canonical: the bits the last character carries beyond the last whole byte must be zero (RFC 4648 §3.5),
  // else a second spelling of the same bytes would pass. (Three characters end in 2 spare bits, two in 4.)
  return rest === 0 || ((SEXTETS[text.charCodeAt(text.length - 1)] as number) & (rest === 2 ? 0x0f : 0x03)) === 0
}

/** The bytes of a strict base64url text; undefined when the text is not one (the empty text is zero bytes). */
export function decodeBase64url (text: string): Buffer | undefined {
  return isBase64url(text) ? Buffer.from(text, 'base64url') : undefined
}
