/**
 * Neither mode keeps an unbounded backlog of signature checks: under a flood of new tokens at most
 * MAX_QUEUED_VERIFICATIONS checks wait in the thread pool, and at most four turns' slices for the event loop;
 * the rest run at once, on the loop, where its delay shows the overload to load shedding. Sliced 32 per turn,
 * an unbounded backlog kept the loop's delay at a slice's (a few ms) while answers came seconds late, and
 * nothing was shed. Each answer stays its own token's.
 */
import t from 'tap'
import { sign } from 'node:crypto'
import { prepareAsymmetric, type PreparedCheck } from '../src/core/signature.js'
import { createSignatureChecks, MAX_CHECKS_PER_TURN, MAX_QUEUED_VERIFICATIONS } from '../src/core/signature-checks.js'
import { generatePair } from './helpers/tokens.js'

const { privateKey, publicKey } = generatePair('ec', { namedCurve: 'P-256' })
const forger = generatePair('ec', { namedCurve: 'P-256' })

function checkOf (i: number): PreparedCheck {
  const data = Buffer.from(`header.payload-${i}`)
  const signature = sign('sha256', data, { key: i % 3 === 0 ? forger.privateKey : privateKey, dsaEncoding: 'ieee-p1363' })
  return prepareAsymmetric('ES256', publicKey, data, signature) as PreparedCheck
}

for (const mode of ['thread-pool', 'event-loop'] as const) {
  const bound = mode === 'thread-pool' ? MAX_QUEUED_VERIFICATIONS : 4 * MAX_CHECKS_PER_TURN
  t.test(`${mode}: at most ${bound} checks wait; past that they run at once`, async (t) => {
    const checks = createSignatureChecks(mode)
    const count = bound * 4
    const prepared = Array.from({ length: count }, (_, i) => checkOf(i))
    let settled = 0
    // All asked for in one turn of the loop, as a flood read in one poll phase.
    const answers = prepared.map(async (c) => {
      const valid = await checks.check(c)
      settled++
      return valid
    })
    // Microtasks only: nothing queued for a later turn (setImmediate, the thread pool's callbacks) has run yet.
    for (let i = 0; i < 10; i++) await null
    t.ok(count - settled <= bound, `${count - settled} checks wait for a later turn`)
    t.same(await Promise.all(answers), prepared.map((_, i) => i % 3 !== 0), 'each answer is its own check\'s')
  })
}
