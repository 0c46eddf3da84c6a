/**
 * A method override (X-HTTP-Method-Override and kin) is the client's own header, which the examples pass on: it
 * may add a method to what the proxy said, never stand in for it. When no proxy header names the method, the
 * method is unknown and every rule with methods applies; an override must not make it "GET" and so take a
 * DELETE rule off the client's DELETE.
 */
import t from 'tap'
import { readOriginalRequest, ruleApplies } from '../src/http/original-request.js'

const deleteRule = { methods: ['DELETE'], hosts: [], require: { groups: ['admins'], roles: [], audiences: [], issuers: [] } }

t.test('an override alone tells nothing: the method stays unknown', async (t) => {
  const original = readOriginalRequest({ 'x-original-uri': '/orders/7', 'x-http-method-override': 'GET' })
  t.same(original.methods, [])
  t.ok(ruleApplies(deleteRule, original), 'the DELETE rule applies, as without the override')
})

t.test('beside a method the proxy named, an override still counts', async (t) => {
  const original = readOriginalRequest({ 'x-original-method': 'POST', 'x-http-method-override': 'DELETE' })
  t.same(original.methods.sort(), ['DELETE', 'POST'])
  t.ok(ruleApplies(deleteRule, original))
  const envoy = readOriginalRequest({ 'x-method-override': 'delete' }, { method: 'POST', host: undefined, uri: '/orders/7' })
  t.same(envoy.methods.sort(), ['DELETE', 'POST'])
})
