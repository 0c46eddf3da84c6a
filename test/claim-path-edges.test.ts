/**
 * The claim-path syntax at its edges: what the parser refuses, and what a read never follows (a string or a
 * plain object indexed like an array, an array or an inherited member read by name, an empty $claim reference).
 */
import t from 'tap'
import { ClaimPathError, parseClaimPath, readClaimPath } from '../src/core/claim-path.js'

t.test('the parser refuses empty paths, empty brackets and a name glued to a bracket', async (t) => {
  for (const path of ['', 'a[]', 'a[""]', '["x"]b', '[0]b']) {
    let thrown: unknown
    try { parseClaimPath(path) } catch (err) { thrown = err }
    t.ok(thrown instanceof ClaimPathError, JSON.stringify(path))
  }
  t.same(parseClaimPath('["x"].b[0]'), ['x', 'b', 0])
})

t.test('reads follow only arrays by index and own members of plain objects by name', async (t) => {
  const read = (claims: Record<string, unknown>, path: string): unknown => readClaimPath(claims, parseClaimPath(path))
  t.equal(read({ groups: 'admin' }, 'groups[0]'), undefined, 'a string is not an array')
  t.equal(read({ groups: { 0: 'admin' } }, 'groups[0]'), undefined, 'an object is not an array')
  t.equal(read({ groups: ['admin'] }, 'groups[0]'), 'admin')
  t.equal(read({ groups: ['admin'] }, 'groups.length'), undefined, 'an array has no members by name')
  t.equal(read({ groups: ['admin'] }, 'groups.0'), undefined)
  t.equal(read({ a: {} }, 'a.toString'), undefined, 'an inherited member is not followed')
  t.equal(read({ azp: '', ra: { '': { roles: ['x'] } } }, 'ra[$azp].roles'), undefined, 'an empty azp names no member')
  t.same(read({ azp: 'c', ra: { c: { roles: ['x'] } } }, 'ra[$azp].roles'), ['x'])
})
