/**
 * YAML tags in a configuration file. The core schema's own (!!str, !!int, …) are YAML's way of writing a
 * plain value; any other tag is refused: an application tag (!ENV, !secret, !vault, !Ref …, from tools
 * that expand them) would otherwise be dropped silently and its text taken as the value, and YAML 1.1's
 * !!omap, !!set, !!binary and !!timestamp would make a Map, Set, Buffer or Date that the checks take for
 * an empty mapping, also in a document that starts with "%YAML 1.1" (read with yaml's YAML 1.1 schema, which
 * has those tags of its own: resolveKnownTags: false does not keep them out of it).
 */
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'
import type { Config } from '../src/config/types.js'

const ISSUER = 'issuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\n'
const ISSUER_1_1 = `%YAML 1.1\n---\n${ISSUER}`

function load (text: string): Config {
  return loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => text })
}

function problemsOf (text: string): string[] {
  try {
    load(text)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

const REFUSED = /^c\.yaml: line \d+, column \d+: invalid YAML: a tag \(!tag\) is not one YAML knows; quote values that start with "!"$/

t.test('an application tag is refused, not dropped (its text would become the client secret)', async (t) => {
  const text = ISSUER + '    algorithms: [HS256]\n    clientSecret: !ENV ${OIDC_CLIENT_SECRET_OF_THE_PRODUCTION_APP}\n'
  const problems = problemsOf(text)
  t.match(problems, [REFUSED])
  t.notMatch(problems.join('\n'), /OIDC_CLIENT_SECRET/, 'the text at fault is not quoted')
  t.match(problemsOf(ISSUER + '    requiredClaims: { hd: !secret workspace_domain }\n'), [REFUSED])
  t.match(problemsOf('%TAG !e! tag:example.com,2000:\n---\n' + ISSUER + '    requiredClaims: { hd: !e!domain example.com }\n'), [REFUSED])
})

t.test('YAML 1.1 collection tags do not turn a requirement into an empty mapping', async (t) => {
  t.match(problemsOf(ISSUER + '    requiredClaims: !!omap [ { hd: example.com } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'forwardAuth:\n  require: !!omap [ { groups: [admin] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'forwardAuth:\n  require: !!set { groups }\n'), [REFUSED])
  // Not a TypeError from deep inside the loader.
  t.match(problemsOf(ISSUER + 'callers: !!omap [ { keys: [] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'server:\n  host: !!binary MTI3LjAuMC4x\n'), [REFUSED])
})

t.test('the core schema tags still write plain values', async (t) => {
  const config = load(ISSUER + '    requiredClaims: { acr: !!str 2 }\nfetch:\n  timeoutMs: !!int "6000"\n')
  t.same(config.issuers[0]?.requiredClaims, { acr: ['2'] })
  t.equal(config.fetch.timeoutMs, 6000)
})

t.test('%YAML 1.1: collection tags do not drop a requirement', async (t) => {
  t.match(problemsOf(ISSUER_1_1 + '    requiredClaims: !!omap [ { hd: example.com } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER_1_1 + 'forwardAuth:\n  require: !!omap [ { groups: [admin] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER_1_1 + 'forwardAuth:\n  require: !!set { groups }\n'), [REFUSED])
  t.match(problemsOf(ISSUER_1_1 + 'forwardAuth:\n  require: !!pairs [ { groups: [admin] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER_1_1 + 'server:\n  host: !!binary MTI3LjAuMC4x\n'), [REFUSED])
})

t.test('%YAML 1.1 documents still read as before otherwise (yes/no, merge keys)', async (t) => {
  const config = load(ISSUER_1_1 + '    checkAuthorizedParty: no\n    requiredClaims: { hd: example.com }\n' +
    '  - &b\n    id: b\n    issuer: https://idp2.example.com\n    audiences: [app2]\n  - <<: *b\n    id: c\n    audiences: [app3]\n')
  t.equal(config.issuers[0]?.checkAuthorizedParty, false)
  t.same(config.issuers[0]?.requiredClaims, { hd: ['example.com'] })
  t.equal(config.issuers[2]?.issuer, 'https://idp2.example.com')
  t.same(config.issuers[2]?.audiences, ['app3'])
})
