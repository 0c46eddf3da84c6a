/**
 * A document that starts with "%YAML 1.1" is read with yaml's YAML 1.1 schema, which has !!omap, !!set,
 * !!pairs, !!binary and !!timestamp of its own: resolveKnownTags: false does not keep them out of it. They are
 * refused there as in a YAML 1.2 document, instead of turning a requirement into an empty mapping.
 */
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'
import type { Config } from '../src/config/types.js'

const ISSUER = '%YAML 1.1\n---\nissuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\n'

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

t.test('%YAML 1.1: collection tags do not drop a requirement', async (t) => {
  t.match(problemsOf(ISSUER + '    requiredClaims: !!omap [ { hd: example.com } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'forwardAuth:\n  require: !!omap [ { groups: [admin] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'forwardAuth:\n  require: !!set { groups }\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'forwardAuth:\n  require: !!pairs [ { groups: [admin] } ]\n'), [REFUSED])
  t.match(problemsOf(ISSUER + 'server:\n  host: !!binary MTI3LjAuMC4x\n'), [REFUSED])
})

t.test('%YAML 1.1 documents still read as before otherwise (yes/no, merge keys)', async (t) => {
  const config = load(ISSUER + '    checkAuthorizedParty: no\n    requiredClaims: { hd: example.com }\n' +
    '  - &b\n    id: b\n    issuer: https://idp2.example.com\n    audiences: [app2]\n  - <<: *b\n    id: c\n    audiences: [app3]\n')
  t.equal(config.issuers[0]?.checkAuthorizedParty, false)
  t.same(config.issuers[0]?.requiredClaims, { hd: ['example.com'] })
  t.equal(config.issuers[2]?.issuer, 'https://idp2.example.com')
  t.same(config.issuers[2]?.audiences, ['app3'])
})
