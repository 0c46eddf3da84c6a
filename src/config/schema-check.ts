/**
 * The shape check: walks the TypeBox (JSON) schema of src/config/schema.ts over the document and reports every
 * problem (types, ranges, required and unknown options, with "did you mean"). Also what every check reports
 * into: the context (Ctx), report() with its document-order rank, the path labels (`issuers[2].audiences`, or
 * the variable's name in environment-only mode) and describe(), the safe rendering of a value for "got …".
 */
import { readFileSync } from 'node:fs'
import { isRecord, type Path } from './document.js'
import { ENV_ISSUER_VARS } from './environment-mode.js'
import { CALLER_KEYS_ENV } from './operations.js'

export interface Ctx {
  /** File path or "environment". */
  source: string
  /** Renders a path inside the document ("issuers[2].audiences", or an environment variable name). */
  label: (path: Path) => string
  env: NodeJS.ProcessEnv
  /** Environment-only mode: the document was built from OIDC_* variables. */
  envMode: boolean
  /** Problems found, with a rank that puts them in document order (sections, then issuers by index). */
  reports: Array<{ rank: number, text: string }>
  /** Reads files the configuration names (decryption keys). */
  readFile: (path: string) => string
}

const SECTION_RANK: Readonly<Record<string, number>> = { server: 1, rateLimit: 2, jwks: 3, fetch: 4, tokenCache: 5, metrics: 6, callers: 7, loadShedding: 8, forwardAuth: 9, batch: 10, revocation: 11 }

export function report (ctx: Ctx, path: Path, text: string): void {
  const where = ctx.label(path)
  const [head, index] = path
  let rank = 0
  if (head === 'issuers') rank = typeof index === 'number' ? 100 + index : 99
  else if (typeof head === 'string') rank = SECTION_RANK[head] ?? 5
  ctx.reports.push({ rank, text: where === '' ? `${ctx.source}: ${text}` : `${ctx.source}: ${where}: ${text}` })
}

export function newCtx (source: string, env: NodeJS.ProcessEnv, envMode: boolean, readFile = (path: string) => readFileSync(path, 'utf8')): Ctx {
  return { source, label: envMode ? envLabel : formatPath, env, envMode, reports: [], readFile }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/

/** `issuers[2].requiredClaims["https://example.com/roles"]` */
export function formatPath (path: Path): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(seg)}]`
  }
  return out
}

/** In environment-only mode, paths of the single issuer are named by their variables. */
function envLabel (path: Path): string {
  if (path[0] === 'callers' && typeof path[2] === 'number') return `${CALLER_KEYS_ENV} (item ${path[2] + 1})`
  if (path[0] === 'issuers' && path[1] === 0 && typeof path[2] === 'string') {
    const name = ENV_ISSUER_VARS[path[2]]
    if (name !== undefined) {
      const item = path[3]
      return typeof item === 'number' ? `${name} (item ${item + 1})` : name
    }
  }
  return formatPath(path)
}

/** A short, safe rendering of a value for "got …". Strings are quoted and truncated. */
export function describe (value: unknown, sensitive = false): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list'
  switch (typeof value) {
    case 'string':
      if (value === '') return 'an empty string'
      if (sensitive) return 'a string'
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
    case 'number':
    case 'boolean':
      return sensitive ? `a ${typeof value}` : String(value)
    case 'object':
      return 'a mapping'
    default:
      return typeof value
  }
}

/** Levenshtein distance, for "did you mean". */
export function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]!
}

function suggest (key: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, '')
  const k = norm(key)
  const limit = k.length <= 4 ? 1 : k.length <= 8 ? 2 : 3
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const c = norm(candidate)
    // "window" -> "windowSeconds", "timeout" -> "timeoutMs"
    const d = k.length >= 4 && c.startsWith(k) ? 0 : distance(k, c)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return bestDistance <= limit ? best : undefined
}

export type Schema = Readonly<Record<string, unknown>>

function expectedOf (schema: Schema): string {
  const text = schema['x-expected']
  if (typeof text === 'string') return text
  switch (schema.type) {
    case 'object': return 'a mapping'
    case 'array': return 'a list'
    case 'string': return 'a string'
    case 'integer': return 'an integer'
    case 'number': return 'a number'
    case 'boolean': return 'true or false'
    default: return 'a valid value'
  }
}

function typeMatches (schema: Schema, value: unknown): boolean {
  switch (schema.type) {
    case 'object': return isRecord(value)
    case 'array': return Array.isArray(value)
    case 'string': return typeof value === 'string'
    case 'integer':
    case 'number': return typeof value === 'number'
    case 'boolean': return typeof value === 'boolean'
    default: return false
  }
}

/** Checks value against schema, reporting each problem; true when it conforms. */
export function check (schema: Schema, value: unknown, path: Path, ctx: Ctx): boolean {
  const sensitive = schema['x-sensitive'] === true
  const fail = (extra = ''): false => {
    report(ctx, path, `expected ${expectedOf(schema)}${extra}, got ${describe(value, sensitive)}`)
    return false
  }

  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf as Schema[]
    // One branch of the value's type (trustProxy: list; requiredClaims: list or string): report inside it.
    const candidates = branches.filter((b) => typeMatches(b, value))
    if (candidates.length === 1 && !('const' in candidates[0]!)) return check(candidates[0]!, value, path, ctx)
    if (branches.some((b) => conforms(b, value))) return true
    return fail()
  }
  if ('const' in schema) return value === schema.const || fail()
  if (Array.isArray(schema.enum)) return schema.enum.includes(value) || fail()

  switch (schema.type) {
    case 'object': {
      if (!isRecord(value)) return fail()
      const properties = (schema.properties ?? {}) as Record<string, Schema>
      const patterns = schema.patternProperties as Record<string, Schema> | undefined
      const required = (schema.required ?? []) as string[]
      let ok = true
      for (const key of Object.keys(value)) {
        const child = value[key]
        if (Object.hasOwn(properties, key)) {
          if (child === undefined && !required.includes(key)) continue
          ok = check(properties[key]!, child, [...path, key], ctx) && ok
          continue
        }
        // dotAll: a key with a line break is a key like any other (a record's ^.*$ must match it, or its value would go unchecked).
        const pattern = patterns && Object.keys(patterns).find((p) => new RegExp(p, 'su').test(key))
        if (patterns !== undefined && pattern !== undefined) {
          ok = check(patterns[pattern]!, child, [...path, key], ctx) && ok
        } else if (schema.additionalProperties === false) {
          const names = Object.keys(properties)
          const hint = suggest(key, names)
          report(ctx, [...path, key], hint !== undefined
            ? `unknown option (did you mean "${hint}"?)`
            : `unknown option (expected one of: ${names.join(', ')})`)
          ok = false
        } else if (isRecord(schema.additionalProperties)) {
          ok = check(schema.additionalProperties, child, [...path, key], ctx) && ok
        }
      }
      for (const key of required) {
        if (value[key] === undefined) {
          const child = properties[key]
          const expected = child !== undefined ? expectedOf(child) : 'a value'
          report(ctx, [...path, key], `${ctx.envMode ? 'not set' : 'missing'}; expected ${expected}`)
          ok = false
        }
      }
      return ok
    }
    case 'array': {
      if (!Array.isArray(value)) return fail()
      const min = schema.minItems
      if (typeof min === 'number' && value.length < min) return fail()
      const items = schema.items as Schema | undefined
      const itemOk = value.map((item, i) => items === undefined || check(items, item, [...path, i], ctx))
      let ok = itemOk.every(Boolean)
      if (schema.uniqueItems === true) {
        const seen = new Set<string>()
        value.forEach((item, i) => {
          if (!itemOk[i]) return // already reported
          const key = JSON.stringify(item)
          if (seen.has(key)) {
            report(ctx, [...path, i], `duplicate value ${describe(item)}; expected each value once`)
            ok = false
          }
          seen.add(key)
        })
      }
      return ok
    }
    case 'string': {
      if (typeof value !== 'string') return fail()
      if (typeof schema.minLength === 'number' && value.length < schema.minLength) return fail()
      if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) return fail()
      return true
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return fail()
      if (schema.type === 'integer' && !Number.isInteger(value)) return fail()
      if (typeof schema.minimum === 'number' && value < schema.minimum) return fail()
      if (typeof schema.maximum === 'number' && value > schema.maximum) return fail()
      return true
    }
    case 'boolean':
      return typeof value === 'boolean' || fail()
    default:
      return true
  }
}

/** check() without reporting. */
export function conforms (schema: Schema, value: unknown): boolean {
  return check(schema, value, [], newCtx('', {}, false))
}

/** A valid integer field of a section, its default when absent, undefined when invalid (already reported). */
export function intField (section: unknown, schema: Schema, key: string, fallback: number): number | undefined {
  if (section === undefined) return fallback
  if (!isRecord(section)) return undefined
  const value = section[key]
  if (value === undefined) return fallback
  const properties = schema.properties as Record<string, Schema>
  return conforms(properties[key]!, value) ? value as number : undefined
}
