/**
 * forwardAuth.require (and a rule's require) takes lists: the identity must have one of the groups, roles…
 * An empty list was taken as no requirement at all, the same as leaving the list out: a template that renders
 * `groups: []` (a Helm value left empty) let every signed-in user through where only some groups were meant to be.
 */
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'

const ISSUER = 'issuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\n'

function problemsOf (text: string): string[] {
  try {
    loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => text })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

t.test('an empty requirement list is refused, not dropped', async (t) => {
  t.same(problemsOf(ISSUER + 'forwardAuth:\n  require: { groups: [] }\n'),
    ['c.yaml: forwardAuth.require.groups: expected a non-empty list of group names, got an empty list'])
  t.same(problemsOf(ISSUER + 'forwardAuth:\n  rules: [ { pathPrefix: /admin, require: { roles: [], issuers: [a] } } ]\n'),
    ['c.yaml: forwardAuth.rules[0].require.roles: expected a non-empty list of role names, got an empty list'])
})

t.test('no requirement is still written by leaving it out', async (t) => {
  const config = loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => ISSUER + 'forwardAuth:\n  require: {}\n' })
  t.same(config.forwardAuth.require, { groups: [], roles: [], audiences: [], issuers: [] })
})
