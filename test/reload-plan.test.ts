/**
 * The reload plan (src/reload-plan.ts) on its own: which changed settings apply now and which wait for a
 * restart (kept at their running values, absent ones staying absent), and the checks of what is in force.
 */
import t from 'tap'
import type { Config } from '../src/config/types.js'
import { parseConfig } from '../src/config/load.js'
import { changedSettings, inForceProblems, keptUntilRestart, planReload, type ReloadPlan } from '../src/reload-plan.js'

const asConfig = (value: Record<string, unknown>): Config => value as unknown as Config

t.test('only the top-level source and warnings are not settings', async (t) => {
  t.same(changedSettings({ source: 'a.yaml', warnings: ['x'] }, { source: 'b.yaml', warnings: [] }), [])
  t.same(changedSettings({ server: { source: 'a' } }, { server: { source: 'b' } }), ['server.source'], 'a nested "source" is a setting')
})

t.test('a reloadable name covers its own subtree, not names that merely start with it', async (t) => {
  const plan = planReload(asConfig({ server: { logLevelX: 'a', logLevel: 'info' } }), asConfig({ server: { logLevelX: 'b', logLevel: 'debug' } }))
  t.same(plan.applied, ['server.logLevel'])
  t.same(plan.pending, ['server.logLevelX'])
  const readiness = planReload(asConfig({ server: { readiness: { a: 1 } } }), asConfig({ server: { readiness: { a: 2 } } }))
  t.same(readiness.applied, ['server.readiness.a'], 'server.readiness is reloadable')
})

t.test('a client CA file added or removed waits for a restart; one changed applies', async (t) => {
  const tls = (clientCaFile?: string): Config => asConfig({ server: { tls: clientCaFile === undefined ? { certFile: 'c' } : { certFile: 'c', clientCaFile } } })
  t.same(planReload(tls(), tls('ca.pem')).pending, ['server.tls.clientCaFile'], 'added')
  t.same(planReload(tls('ca.pem'), tls()).pending, ['server.tls.clientCaFile'], 'removed')
  t.same(planReload(tls('a.pem'), tls('b.pem')).applied, ['server.tls.clientCaFile'], 'changed')
})

t.test('a pending setting keeps its running value, and one absent when running stays absent', async (t) => {
  const next = asConfig({ server: { host: '0.0.0.0', logLevel: 'debug' } })
  const plan = planReload(asConfig({ server: { logLevel: 'info' } }), next)
  t.same(plan.pending, ['server.host'])
  t.notOk('host' in (plan.config.server as object), 'not added until a restart')
  t.equal(plan.config.server.logLevel, 'debug')
  t.equal(keptUntilRestart(plan, next, 'server.host'), true)
  t.equal(keptUntilRestart(plan, next, 'server.logLevel'), false, 'applied')
  t.equal(keptUntilRestart(plan, next, 'server.port'), false, 'not changed')
})

t.test('in-force checks of server.maxTokenBytes only when it was applied, at the exact bounds', async (t) => {
  const base = parseConfig({ issuers: [{ id: 'a', issuer: 'https://idp.example.com', audiences: ['x'] }] }, 'c.yaml', {})
  const heap = 64 * 2 ** 30
  const planOf = (maxTokenBytes: number, applied: string[]): ReloadPlan => ({
    config: { ...base, server: { ...base.server, maxTokenBytes, bodyLimit: 65536 }, batch: { ...base.batch, maxBodyBytes: 32768 } },
    applied,
    pending: [],
    rebuildsVerifier: true
  })
  t.same(inForceProblems(planOf(16384, ['server.maxTokenBytes']), heap), [])
  t.match(inForceProblems(planOf(32768, ['server.maxTokenBytes']), heap), [/expected less than the running batch\.maxBodyBytes \(32768\), got 32768/])
  t.same(inForceProblems(planOf(32768, []), heap), [], 'not applied: nothing to check')
  const equalBody: ReloadPlan = { ...planOf(65536, ['server.maxTokenBytes']) }
  equalBody.config = { ...equalBody.config, batch: { ...equalBody.config.batch, maxBodyBytes: 1 << 20 } }
  t.match(inForceProblems(equalBody, heap), [/expected less than the running server\.bodyLimit \(65536\), got 65536/])
})

t.test('keptUntilRestart: a setting under a pending one is kept only where the next value differs', async (t) => {
  // TLS turned on by a reload: the whole server.tls section waits for a restart.
  const next = asConfig({ server: { tls: { certFile: 'c.pem' } } })
  const plan = planReload(asConfig({ server: {} }), next)
  t.same(plan.pending, ['server.tls'])
  t.equal(keptUntilRestart(plan, next, 'server.tls.certFile'), true)
  t.equal(keptUntilRestart(plan, next, 'server.tls.keyFile'), false, 'unset in both: nothing is kept')
  t.equal(keptUntilRestart(plan, next, 'server'), false, 'a section holding a pending setting is not itself pending')
})
