/**
 * The hints of the error catalogue (src/errors.ts) tell an operator which setting to change: every setting
 * they name must exist, or following the hint gets the configuration refused.
 */
import t from 'tap'
import { ERROR_CODES } from '../src/errors.js'
import { ConfigFileSchema } from '../src/config/schema.js'

/** The schema at a dotted path such as "server.maxTokenBytes" or "callers.keys[].rateLimit.max"; undefined when there is none. */
interface SchemaNode { properties?: Record<string, SchemaNode>, items?: SchemaNode }

function schemaAt (path: string): SchemaNode | undefined {
  let schema: SchemaNode | undefined = ConfigFileSchema as SchemaNode
  for (const part of path.split('.')) {
    const list = part.endsWith('[]')
    schema = schema?.properties?.[list ? part.slice(0, -2) : part]
    if (list) schema = schema?.items
  }
  return schema
}

/** Dotted paths in a text, as settings are written ("server.maxTokenBytes", "callers.keys[].sha256"); file names are not. */
function settingsNamed (text: string): string[] {
  return [...text.matchAll(/\b[a-z][A-Za-z0-9]*(?:\[\])?(?:\.[a-z][A-Za-z0-9]*(?:\[\])?)+/g)].map((m) => m[0]).filter((path) => !/\.(?:yaml|json|js|ts)$/.test(path))
}

t.test('every setting a hint names exists', async (t) => {
  let named = 0
  for (const [code, definition] of Object.entries(ERROR_CODES)) {
    for (const setting of settingsNamed(`${definition.message} ${definition.hint ?? ''}`)) {
      named++
      t.ok(schemaAt(setting) !== undefined, `${code}: ${setting}`)
    }
  }
  t.ok(named >= 8, `hints name settings (${named} found)`)
})

t.test('the check finds a setting that does not exist', async (t) => {
  t.same(settingsNamed('Raise server.maxTokenBytes, not limits.maxTokenBytes; see issuers[].requiredClaims and openapi.yaml.'),
    ['server.maxTokenBytes', 'limits.maxTokenBytes', 'issuers[].requiredClaims'])
  t.equal(schemaAt('server.maxTokenBytez'), undefined)
  t.equal(schemaAt('limits.maxTokenBytes'), undefined)
  t.ok(schemaAt('callers.keys[].rateLimit.max'))
})
