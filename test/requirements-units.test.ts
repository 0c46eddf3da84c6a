/**
 * checkRequirements on its own: the azp check asks about another client only when the token names one.
 */
import t from 'tap'
import { checkRequirements, NO_REQUIREMENTS } from '../src/core/requirements.js'
import type { VerifiedIdentity } from '../src/core/identity.js'

t.test('a token without azp is never "another client" of its issuer', async (t) => {
  const identity = { issuer: { id: 'main' }, authorizedParty: null, audiences: ['client-a'], groups: [], roles: [] } as unknown as VerifiedIdentity
  const asked: Array<string | null> = []
  const otherClient = (_issuer: string, azp: string | null): boolean => { asked.push(azp); return true }
  t.doesNotThrow(() => checkRequirements(identity, [{ ...NO_REQUIREMENTS, audiences: ['client-a'] }], otherClient))
  t.same(asked, [], 'not asked')
  const withAzp = { ...identity, authorizedParty: 'client-b' } as unknown as VerifiedIdentity
  t.throws(() => checkRequirements(withAzp, [{ ...NO_REQUIREMENTS, audiences: ['client-a'] }], otherClient), { code: 'requirement_not_met' })
})
