/**
 * Caller authentication by API key. Only SHA-256 hashes of the keys are configured; a presented key is
 * hashed and compared with every configured hash in constant time, so neither the comparison nor the
 * position of the matching entry shows in the response time.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { CallerKeyConfig } from '../config/types.js'

/** The header that carries the key. Authorization is not used: it carries the ID token on /verify. */
export const API_KEY_HEADER = 'x-api-key'

/** Longer keys are refused before hashing: a key is a random string, not a document. */
export const MAX_API_KEY_LENGTH = 512

/** Visible ASCII only: no spaces, no commas (Node joins repeated headers with ", "), no control characters. */
const KEY_CHARACTERS = /^[\x21-\x2b\x2d-\x7e]+$/

export type CallerCheck =
  | { ok: true, caller: CallerKeyConfig }
  | { ok: false, code: 'caller_key_missing' | 'caller_key_invalid' }

export class CallerKeys {
  readonly #entries: Array<{ hash: Buffer, caller: CallerKeyConfig }>

  constructor (keys: readonly CallerKeyConfig[]) {
    this.#entries = keys.map((caller) => ({ hash: Buffer.from(caller.sha256, 'hex'), caller }))
  }

  /** Off when no key is configured (the localhost sidecar). */
  get enabled (): boolean {
    return this.#entries.length > 0
  }

  /** Checks the header value as Node gives it (a string, or undefined when absent). */
  check (presented: string | string[] | undefined): CallerCheck {
    if (presented === undefined || presented === '') return { ok: false, code: 'caller_key_missing' }
    if (typeof presented !== 'string' || presented.length > MAX_API_KEY_LENGTH || !KEY_CHARACTERS.test(presented)) {
      return { ok: false, code: 'caller_key_invalid' }
    }
    const hash = createHash('sha256').update(presented, 'utf8').digest()
    let found: CallerKeyConfig | undefined
    // No early exit: every configured hash is compared.
    for (const entry of this.#entries) {
      if (timingSafeEqual(hash, entry.hash) && found === undefined) found = entry.caller
    }
    return found === undefined ? { ok: false, code: 'caller_key_invalid' } : { ok: true, caller: found }
  }
}

/** One CallerKeys per configuration (a reload brings a new one). */
const byConfig = new WeakMap<readonly CallerKeyConfig[], CallerKeys>()

export function callerKeysFor (keys: readonly CallerKeyConfig[]): CallerKeys {
  let found = byConfig.get(keys)
  if (found === undefined) {
    found = new CallerKeys(keys)
    byConfig.set(keys, found)
  }
  return found
}
