/**
 * POST /revocations refuses a `before` so old that everything it covers has expired (retentionSeconds), and one
 * in the future past the tolerance; both name `before`.
 */
import t from 'tap'
import { revocationOfRequest } from '../src/http/routes/revocations.js'

const issuers = [{ id: 'main', clockToleranceSeconds: 30 }]
const NOW = 1_900_000_000
const RETENTION = 86_400

t.test('before within [now - retention, now + 60)', async (t) => {
  t.match(revocationOfRequest({ issuer: 'main', sub: 'x', before: NOW - RETENTION + 1 }, issuers, RETENTION, NOW), { kind: 'sub', before: NOW - RETENTION + 1 })
  t.throws(() => revocationOfRequest({ issuer: 'main', sub: 'x', before: NOW - RETENTION }, issuers, RETENTION, NOW), { code: 'revocation_invalid', details: { claim: 'before' } })
  t.throws(() => revocationOfRequest({ issuer: 'main', all: true, before: 0 }, issuers, RETENTION, NOW), { code: 'revocation_invalid', details: { claim: 'before' } })
  t.match(revocationOfRequest({ issuer: 'main', all: true, before: NOW + 60 }, issuers, RETENTION, NOW), { kind: 'issuer' })
  t.throws(() => revocationOfRequest({ issuer: 'main', all: true, before: NOW + 61 }, issuers, RETENTION, NOW), { code: 'revocation_invalid', details: { claim: 'before' } })
})
