/**
 * Loads, validates and resolves the configuration (see src/config/schema.ts for the file format and
 * src/config/types.ts for the result).
 *
 * Validation is complete before anything runs and reports EVERY problem at once, each as
 * `<source>: <path>: <what was expected>`, e.g. `config.yaml: issuers[2].audiences: expected a non-empty
 * list of client ids`. The source is the file path, `environment` or `command line`.
 */
import { parseClaimPath } from '../core/claim-path.js'
import { envValue, isRecord } from './document.js'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { extname } from 'node:path'
import { parseDocument, type YAMLError } from 'yaml'
import { CALLER_KEYS_ENV, callersFromEnv, checkOperations, resolveOperations } from './operations.js'
import { checkForwardAuth, resolveForwardAuth } from './forward-auth.js'
import { checkRevocation, resolveRevocation } from './revocation.js'
import { checkDecryptionCandidates, checkIssuerNames, checkProviderOptions, expandPresets, resolveProviderOptions, type ProviderExtras } from './provider-options.js'
import {
  ConfigFileSchema,
  DEFAULT_ENV_ISSUER_ID,
  FETCH_DEFAULTS,
  TOKEN_CACHE_DEFAULTS,
  ISSUER_DEFAULTS,
  JWKS_DEFAULTS,
  JwksCacheSchema,
  LOG_LEVELS,
  MIN_SECRET_BYTES,
  PRIVATE_JWK_MEMBERS,
  RATE_LIMIT_DEFAULTS,
  SERVER_DEFAULTS,
  ServerSchema,
  type ConfigFile,
  type IssuerFile
} from './schema.js'
import {
  DEFAULT_ALGORITHMS,
  HMAC_ALGORITHMS,
  SUPPORTED_ALGORITHMS,
  type Algorithm,
  type ClaimMappingValue,
  type Config,
  type HmacAlgorithm,
  type IssuerConfig,
  type JsonWebKeySet,
  type KeySource,
  type MappableField,
  type ServerConfig
} from './types.js'

/** A configuration that cannot be used. `problems` has one self-contained line per problem. */
export class ConfigError extends Error {
  readonly problems: string[]

  constructor (problems: string[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`
    super(`invalid configuration (${count}):\n${problems.map((p) => `  ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface LoadConfigOptions {
  /** Command line arguments (default: process.argv.slice(2)); `--config PATH` or `--config=PATH`. */
  argv?: string[]
  /** Environment (default: process.env). */
  env?: NodeJS.ProcessEnv
  /** Reads a file as UTF-8 text (default: fs.readFileSync). */
  readFile?: (path: string) => string
  /**
   * The configuration file's text, used instead of reading the file (a cluster worker resolves the text its
   * primary started from). Files the configuration names (keys, certificates) are still read.
   */
  configText?: string
  /** Called with the configuration file's text as read (the cluster primary keeps it for its workers). */
  onConfigText?: (text: string) => void
}

export const ENVIRONMENT = 'environment'
const COMMAND_LINE = 'command line'

/** The environment variables of environment-only (single issuer) mode, by issuer option. */
const ENV_ISSUER_VARS: Readonly<Record<string, string>> = {
  id: 'OIDC_ISSUER_ID',
  issuer: 'OIDC_ISSUER',
  audiences: 'OIDC_AUDIENCE',
  algorithms: 'OIDC_ALGORITHMS',
  jwksUri: 'OIDC_JWKS_URI',
  decryptionKeys: 'OIDC_DECRYPTION_KEY_FILE'
}

// ---------------------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------------------

/**
 * Resolves the configuration from `--config PATH` (or OIDC_VERIFIER_CONFIG), or else from the
 * environment-only single-issuer variables, then applies HOST, PORT and LOG_LEVEL. Throws ConfigError
 * listing every problem found.
 */
export function loadConfig (opts: LoadConfigOptions = {}): Config {
  const argv = opts.argv ?? process.argv.slice(2)
  const env = opts.env ?? process.env
  const readFile = opts.readFile ?? readConfigText
  const problems: string[] = []

  const fromArgv = configPathFromArgv(argv, problems)
  const configPath = fromArgv ?? envValue(env, 'OIDC_VERIFIER_CONFIG')

  if (configPath !== undefined) {
    const single = [...Object.values(ENV_ISSUER_VARS), CALLER_KEYS_ENV].filter((name) => envValue(env, name) !== undefined)
    if (single.length > 0) {
      const via = fromArgv !== undefined ? '--config' : 'OIDC_VERIFIER_CONFIG'
      problems.push(`${ENVIRONMENT}: ${single.join(', ')}: ambiguous: environment-only issuer settings cannot be combined with a config file (${configPath}, from ${via}); configure the issuers in the file, or unset ${single.length === 1 ? 'it' : 'them'}`)
    }
    const given = opts.configText
    const doc = readConfigFile(configPath, (path) => {
      const text = given ?? readFile(path)
      opts.onConfigText?.(text)
      return text
    }, problems)
    if (doc === undefined) {
      serverFromEnv(env, problems) // still report the environment's problems
      throw new ConfigError(problems)
    }
    const config = resolve(doc, newCtx(configPath, env, false, readFile), problems)
    if (config === undefined || problems.length > 0) throw new ConfigError(problems)
    return config
  }

  if (envValue(env, 'OIDC_ISSUER') === undefined) {
    if (problems.length === 0) {
      problems.push('no issuers configured: pass --config PATH (or set OIDC_VERIFIER_CONFIG) to load a YAML or JSON ' +
        'configuration file, or set OIDC_ISSUER and OIDC_AUDIENCE (optionally OIDC_JWKS_URI, OIDC_ALGORITHMS, ' +
        'OIDC_ISSUER_ID) to verify tokens of a single issuer')
    }
    serverFromEnv(env, problems)
    throw new ConfigError(problems)
  }

  const config = resolve(environmentDocument(env), newCtx(ENVIRONMENT, env, true, readFile), problems)
  if (config === undefined || problems.length > 0) throw new ConfigError(problems)
  return config
}

/**
 * Validates a parsed configuration document (the file's content) and resolves it with defaults and the
 * environment (HOST, PORT, LOG_LEVEL overrides; clientSecretEnv lookups). `source` names the document in
 * messages and becomes `Config.source`. Throws ConfigError listing every problem found.
 */
export function parseConfig (doc: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = []
  const config = resolve(doc, newCtx(source, env, false), problems)
  if (config === undefined || problems.length > 0) throw new ConfigError(problems)
  return config
}

// ---------------------------------------------------------------------------------------------------------
// Locating and reading the file
// ---------------------------------------------------------------------------------------------------------

function configPathFromArgv (argv: readonly string[], problems: string[]): string | undefined {
  let found: string | undefined
  let count = 0
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') break
    let value: string | undefined
    if (arg === '--config') {
      value = argv[i + 1]
      if (value !== undefined && !value.startsWith('-')) i++
      else value = ''
    } else if (arg.startsWith('--config=')) {
      value = arg.slice('--config='.length)
    } else {
      // A misspelt --config, or a bare path, would otherwise start the service from the environment instead.
      problems.push(`${COMMAND_LINE}: ${JSON.stringify(arg.length > 60 ? `${arg.slice(0, 60)}...` : arg)}: unknown argument; expected only --config PATH (or none, with OIDC_VERIFIER_CONFIG or the OIDC_* variables)`)
      continue
    }
    count++
    if (value === '') problems.push(`${COMMAND_LINE}: --config: expected a file path`)
    else found ??= value
  }
  if (count > 1) problems.push(`${COMMAND_LINE}: --config: given ${count} times; expected it once`)
  return found
}

const FS_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent of it is not a directory'
}

/** Reads and parses the file; undefined when that failed (the problems say why). */
/** A configuration is kilobytes: a file far larger is a mistake, and parsing it could exhaust the heap. */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024

/** A configuration file's text: at most MAX_CONFIG_FILE_BYTES of valid UTF-8 (a replacement character would change a value silently). */
function readConfigText (path: string): string {
  const bytes = readFileSync(path)
  if (bytes.length > MAX_CONFIG_FILE_BYTES) throw new Error(`it is larger than ${MAX_CONFIG_FILE_BYTES} bytes; a configuration is a few kilobytes`)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new Error('it is not valid UTF-8 text (save it as UTF-8)')
  }
}

function readConfigFile (path: string, readFile: (path: string) => string, problems: string[]): unknown {
  const ext = extname(path).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    problems.push(`${path}: expected a file name ending in .yaml, .yml or .json (the extension selects the format)`)
    return undefined
  }
  let text: string
  try {
    text = readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code
    const why = code !== undefined ? (FS_ERRORS[code] ?? code) : (err instanceof Error ? err.message : String(err))
    problems.push(`${path}: cannot read the file: ${why}`)
    return undefined
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (text.trim() === '') {
    problems.push(`${path}: the file is empty; expected a configuration with at least "issuers"`)
    return undefined
  }
  return ext === '.json' ? parseJsonText(path, text, problems) : parseYamlText(path, text, problems)
}

function parseYamlText (path: string, text: string, problems: string[]): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = err.linePos?.[0]
      const where = pos !== undefined ? `line ${pos.line}, column ${pos.col}: ` : ''
      problems.push(`${path}: ${where}invalid YAML: ${yamlProblem(err)}`)
    }
    return undefined
  }
  if (doc.contents === null) {
    problems.push(`${path}: the file is empty (only comments); expected a configuration with at least "issuers"`)
    return undefined
  }
  try {
    return doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    // yaml's messages here quote the alias; the line is not known.
    const tooMany = err instanceof Error && /alias count/i.test(err.message)
    problems.push(`${path}: invalid YAML: ${tooMany ? 'more than 100 aliases (*name) are expanded; expected a configuration without alias bombs' : 'an alias (a value starting with "*") names no anchor set before it; quote values that start with "*"'}`)
    return undefined
  }
}

/**
 * yaml's own words for a syntax error, without what they quote of the text: problems are printed at start and
 * logged on reload, and the text at fault may be a secret (an unquoted clientSecret starting with "*", "|", ">"
 * or "]"). yaml quotes it after ": ", and for a few codes inside the message: those get words of our own. The
 * line and column say where; a hint says what usually fixes it.
 */
function yamlProblem (err: YAMLError): string {
  const own = YAML_OWN_WORDS[err.code]
  if (own !== undefined) return own
  const words = err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').split(': ')[0]?.trim() ?? err.code
  const hint = YAML_HINTS[err.code]
  return hint === undefined ? words : `${words}; ${hint}`
}

/** Codes whose messages may quote the text elsewhere than after ": ". */
const YAML_OWN_WORDS: Partial<Record<YAMLError['code'], string>> = {
  MULTIPLE_DOCS: 'the file contains several documents (---); expected exactly one',
  UNEXPECTED_TOKEN: 'unexpected characters; quote values that start with |, >, ], }, %, or another YAML indicator',
  BAD_DQ_ESCAPE: 'a double-quoted value has an invalid escape sequence; use single quotes, or escape each backslash',
  TAG_RESOLVE_FAILED: 'a tag (!tag) is not one YAML knows; quote values that start with "!"'
}

const YAML_HINTS: Partial<Record<YAMLError['code'], string>> = {
  BAD_ALIAS: 'quote values that start with "*"',
  BAD_SCALAR_START: 'quote values that start with a character YAML reserves',
  TAB_AS_INDENT: 'indent with spaces'
}

function parseJsonText (path: string, text: string, problems: string[]): unknown {
  try {
    scanJson(text)
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err
    const { line, column } = lineColumn(text, err.offset)
    problems.push(`${path}: line ${line}, column ${column}: invalid JSON: ${err.reason}`)
    return undefined
  }
  return JSON.parse(text)
}

function lineColumn (text: string, offset: number): { line: number, column: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { line, column: offset - lineStart + 1 }
}

class JsonSyntaxError extends Error {
  constructor (readonly offset: number, readonly reason: string) {
    super(reason)
  }
}

const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y
const MAX_JSON_DEPTH = 256

/**
 * A strict RFC 8259 syntax check that, unlike JSON.parse, reports where the error is and rejects duplicate
 * keys (JSON.parse silently keeps the last one, which would hide a mistake in a security setting).
 */
function scanJson (text: string): void {
  let i = 0
  const n = text.length
  const fail = (reason: string, at = i): never => { throw new JsonSyntaxError(at, reason) }
  const unexpected = (expected: string): never =>
    i >= n ? fail(`unexpected end of file, expected ${expected}`) : fail(`unexpected ${JSON.stringify(text[i])}, expected ${expected}`)
  const space = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++
      else break
    }
  }
  const string = (): string => {
    const start = i
    i++
    for (;;) {
      if (i >= n) fail('unterminated string', start)
      const c = text.charCodeAt(i)
      if (c === 0x22) {
        i++
        return JSON.parse(text.slice(start, i)) as string
      }
      if (c === 0x5c) {
        const esc = text[i + 1]
        if (esc !== undefined && '"\\/bfnrt'.includes(esc)) i += 2
        else if (esc === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6
        else fail('invalid escape sequence in string')
      } else if (c < 0x20) {
        fail('control character in string (use an escape sequence)')
      } else {
        i++
      }
    }
  }
  const value = (depth: number): void => {
    if (depth > MAX_JSON_DEPTH) fail('nesting is too deep')
    space()
    const c = text[i]
    if (c === '{') {
      i++
      const keys = new Set<string>()
      space()
      if (text[i] === '}') { i++; return }
      for (;;) {
        space()
        if (text[i] !== '"') unexpected('a string in double quotes (an object key)')
        const keyStart = i
        const key = string()
        if (keys.has(key)) fail(`duplicate key ${JSON.stringify(key)}`, keyStart)
        keys.add(key)
        space()
        if (text[i] !== ':') unexpected('":"')
        i++
        value(depth + 1)
        space()
        if (text[i] === ',') { i++; continue }
        if (text[i] === '}') { i++; return }
        unexpected('"," or "}"')
      }
    } else if (c === '[') {
      i++
      space()
      if (text[i] === ']') { i++; return }
      for (;;) {
        value(depth + 1)
        space()
        if (text[i] === ',') { i++; continue }
        if (text[i] === ']') { i++; return }
        unexpected('"," or "]"')
      }
    } else if (c === '"') {
      string()
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      JSON_NUMBER.lastIndex = i
      if (!JSON_NUMBER.test(text)) fail('invalid number')
      i = JSON_NUMBER.lastIndex
    } else if (text.startsWith('true', i)) {
      i += 4
    } else if (text.startsWith('false', i)) {
      i += 5
    } else if (text.startsWith('null', i)) {
      i += 4
    } else {
      unexpected('a value')
    }
  }
  value(0)
  space()
  if (i < n) fail(`unexpected ${JSON.stringify(text[i])} after the end of the JSON value`)
}

// ---------------------------------------------------------------------------------------------------------
// Paths and messages
// ---------------------------------------------------------------------------------------------------------

type Path = ReadonlyArray<string | number>

interface Ctx {
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

function report (ctx: Ctx, path: Path, text: string): void {
  const where = ctx.label(path)
  const [head, index] = path
  let rank = 0
  if (head === 'issuers') rank = typeof index === 'number' ? 100 + index : 99
  else if (typeof head === 'string') rank = SECTION_RANK[head] ?? 5
  ctx.reports.push({ rank, text: where === '' ? `${ctx.source}: ${text}` : `${ctx.source}: ${where}: ${text}` })
}

function newCtx (source: string, env: NodeJS.ProcessEnv, envMode: boolean, readFile = (path: string) => readFileSync(path, 'utf8')): Ctx {
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
function describe (value: unknown, sensitive = false): string {
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
function distance (a: string, b: string): number {
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

// ---------------------------------------------------------------------------------------------------------
// Shape check: walks the TypeBox (JSON) schema of src/config/schema.ts
// ---------------------------------------------------------------------------------------------------------

type Schema = Readonly<Record<string, unknown>>

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
function check (schema: Schema, value: unknown, path: Path, ctx: Ctx): boolean {
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
function conforms (schema: Schema, value: unknown): boolean {
  return check(schema, value, [], newCtx('', {}, false))
}

// ---------------------------------------------------------------------------------------------------------
// Semantic checks and resolution
// ---------------------------------------------------------------------------------------------------------

/** A valid integer field of a section, its default when absent, undefined when invalid (already reported). */
function intField (section: unknown, schema: Schema, key: string, fallback: number): number | undefined {
  if (section === undefined) return fallback
  if (!isRecord(section)) return undefined
  const value = section[key]
  if (value === undefined) return fallback
  const properties = schema.properties as Record<string, Schema>
  return conforms(properties[key]!, value) ? value as number : undefined
}

function isLoopbackHost (hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

/** The https-or-loopback-http URL rule for issuer and jwksUri; reports and returns false when broken. */
/**
 * A URL for "got …" without what may be a credential: a user name or password (shown as "…@"), a query or a
 * fragment (cut off).
 */
function describeUrl (value: string): string {
  const cut = value.search(/[?#]/)
  let shown = cut < 0 ? value : value.slice(0, cut)
  const withoutUser = shown.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}…@`)
  if (cut < 0 && withoutUser === shown) return describe(value)
  shown = withoutUser + (cut < 0 ? '' : '…')
  return `${describe(shown)} (the rest not shown: it may hold a credential)`
}

function checkUrl (value: string, path: Path, ctx: Ctx): boolean {
  const got = describeUrl(value)
  if (/\s/.test(value)) {
    report(ctx, path, `expected a URL without whitespace, got ${got}`)
    return false
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    report(ctx, path, `expected an absolute https URL, got ${got}`)
    return false
  }
  if (url.protocol === 'http:') {
    if (!isLoopbackHost(url.hostname)) {
      report(ctx, path, `expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got ${got}`)
      return false
    }
  } else if (url.protocol !== 'https:') {
    report(ctx, path, `expected an https URL, got ${got}`)
    return false
  }
  if (url.username !== '' || url.password !== '') {
    report(ctx, path, 'expected a URL without a user name or password')
    return false
  }
  if (value.includes('?') || value.includes('#')) {
    report(ctx, path, `expected a URL without a query string or fragment, got ${got}`)
    return false
  }
  return true
}

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isProxyAddress (value: string): boolean {
  if (PROXY_KEYWORDS.has(value)) return true
  const parts = value.split('/')
  if (parts.length > 2) return false
  const version = isIP(parts[0]!)
  if (version === 0) return false
  const bits = parts[1]
  if (bits === undefined) return true
  if (/^[0-9]{1,3}$/.test(bits)) return Number(bits) <= (version === 4 ? 32 : 128)
  return version === 4 && isIP(bits) === 4 // address/netmask
}

/**
 * Listening on the name "localhost" makes Fastify open one server per address it resolves to (127.0.0.1 and
 * ::1); what the service sets up on its listener (certificate renewal, the header limit, ending kept-alive
 * connections at a stop) would reach only the first.
 */
const LOCALHOST_PROBLEM = 'expected an address, not the name "localhost", which opens a second listener (for ::1) that certificate renewal, the header limit and the graceful stop do not reach: use 127.0.0.1 (the default), ::1, or :: for every address'
const isLocalhostName = (host: string): boolean => host === 'localhost'

function checkServer (server: unknown, ctx: Ctx): void {
  if (!isRecord(server) && server !== undefined) return
  const schema = ServerSchema as unknown as Schema
  const bodyLimit = intField(server, schema, 'bodyLimit', SERVER_DEFAULTS.bodyLimit)
  const maxTokenBytes = intField(server, schema, 'maxTokenBytes', SERVER_DEFAULTS.maxTokenBytes)
  if (bodyLimit !== undefined && maxTokenBytes !== undefined && maxTokenBytes >= bodyLimit) {
    const which = server?.maxTokenBytes === undefined ? ' (the default)' : ''
    report(ctx, ['server', 'maxTokenBytes'], `expected less than server.bodyLimit (${bodyLimit}), got ${maxTokenBytes}${which}`)
  }
  for (const key of ['host', 'opsHost'] as const) {
    if (typeof server?.[key] === 'string' && isLocalhostName(server[key])) report(ctx, ['server', key], LOCALHOST_PROBLEM)
  }
  const trustProxy = server?.trustProxy
  if (Array.isArray(trustProxy)) {
    trustProxy.forEach((entry, i) => {
      if (typeof entry === 'string' && entry !== '' && !isProxyAddress(entry)) {
        report(ctx, ['server', 'trustProxy', i], `expected an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal, got ${describe(entry)}`)
      }
    })
  }
}

/**
 * The JWKS cache entries the issuers need at once: one per JWKS URL (issuers that name the same one share it),
 * and for each provider found by discovery one for its key set and one more while it follows a moved jwks_uri
 * (the new URL's keys are loaded before the old URL is let go). Fewer would make key sets evict each other, and
 * an issuer whose keys are evicted loses the stale keys it serves while its provider is down.
 */
function jwksEntriesNeeded (issuers: unknown): { needed: number, urls: number, discovered: number } {
  const jwksUris = new Set<string>()
  const discoveries = new Set<string>()
  for (const issuer of Array.isArray(issuers) ? issuers : []) {
    if (!isRecord(issuer) || issuer.jwks !== undefined) continue
    if (typeof issuer.jwksUri === 'string') jwksUris.add(issuer.jwksUri)
    else discoveries.add(String(issuer.discoveryUrl ?? issuer.issuer))
  }
  return { needed: jwksUris.size + 2 * discoveries.size, urls: jwksUris.size + discoveries.size, discovered: discoveries.size }
}

function checkJwksCache (jwks: unknown, ctx: Ctx): void {
  if (!isRecord(jwks) && jwks !== undefined) return
  const schema = JwksCacheSchema as unknown as Schema
  const get = (key: keyof typeof JWKS_DEFAULTS): number | undefined => intField(jwks, schema, key, JWKS_DEFAULTS[key])
  const min = get('minFreshnessSeconds')
  const def = get('defaultFreshnessSeconds')
  const max = get('maxFreshnessSeconds')
  if (min !== undefined && max !== undefined && min > max) {
    report(ctx, ['jwks', 'minFreshnessSeconds'], `expected at most jwks.maxFreshnessSeconds (${max}), got ${min}`)
  } else if (min !== undefined && max !== undefined && def !== undefined && (def < min || def > max)) {
    report(ctx, ['jwks', 'defaultFreshnessSeconds'], `expected from jwks.minFreshnessSeconds (${min}) to jwks.maxFreshnessSeconds (${max}), got ${def}`)
  }
  const initial = get('backoffInitialSeconds')
  const most = get('backoffMaxSeconds')
  if (initial !== undefined && most !== undefined && initial > most) {
    report(ctx, ['jwks', 'backoffInitialSeconds'], `expected at most jwks.backoffMaxSeconds (${most}), got ${initial}`)
  }
}

const SUPPORTED = new Set<string>(SUPPORTED_ALGORITHMS)
const HMAC = new Set<string>(HMAC_ALGORITHMS)

/** Semantic checks of issuers[i]; returns the resolved client secret, if any. */
function checkIssuer (issuer: Record<string, unknown>, i: number, ctx: Ctx): string | undefined {
  const at = (...rest: Array<string | number>): Path => ['issuers', i, ...rest]

  if (typeof issuer.issuer === 'string' && issuer.issuer !== '') checkUrl(issuer.issuer, at('issuer'), ctx)
  if (typeof issuer.jwksUri === 'string' && issuer.jwksUri !== '') checkUrl(issuer.jwksUri, at('jwksUri'), ctx)

  if (issuer.jwks !== undefined && issuer.jwksUri !== undefined) {
    report(ctx, at(), 'jwks and jwksUri are mutually exclusive; expected one of them (or neither, to use discovery)')
  }
  const jwks = issuer.jwks
  if (isRecord(jwks) && Array.isArray(jwks.keys)) {
    jwks.keys.forEach((key, k) => {
      if (!isRecord(key)) return
      const found = PRIVATE_JWK_MEMBERS.filter((member) => Object.hasOwn(key, member))
      if (found.length > 0) {
        report(ctx, at('jwks', 'keys', k), `contains private key members (${found.join(', ')}); expected public keys only ` +
          '(never put private or symmetric keys in a JWKS; use clientSecret for HMAC)')
      }
    })
  }

  // Client secret: inline or from an environment variable.
  const hasInline = issuer.clientSecret !== undefined
  const hasEnv = issuer.clientSecretEnv !== undefined
  if (hasInline && hasEnv) {
    report(ctx, at(), 'clientSecret and clientSecretEnv are mutually exclusive; expected at most one of them')
  }
  let secret: string | undefined
  let secretPath: Path | undefined
  let secretFrom = ''
  if (hasInline && typeof issuer.clientSecret === 'string') {
    secret = issuer.clientSecret
    secretPath = at('clientSecret')
  } else if (!hasInline && hasEnv && typeof issuer.clientSecretEnv === 'string' &&
    conforms((ConfigFileSchema.properties.issuers.items.properties.clientSecretEnv as unknown as Schema), issuer.clientSecretEnv)) {
    const name = issuer.clientSecretEnv
    const value = envValue(ctx.env, name)
    if (value === undefined) report(ctx, at('clientSecretEnv'), `expected environment variable ${name} to hold the client secret, but it is not set`)
    secret = value
    secretPath = at('clientSecretEnv')
    secretFrom = `the value of ${name} `
  }

  // Algorithms.
  const algorithms = issuer.algorithms === undefined ? DEFAULT_ALGORITHMS : issuer.algorithms
  const valid: Algorithm[] = []
  if (Array.isArray(algorithms)) {
    algorithms.forEach((alg: unknown, j) => {
      if (typeof alg !== 'string' || alg === '') return // reported by the shape check
      if (alg.toLowerCase() === 'none') {
        report(ctx, at('algorithms', j), '"none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm')
      } else if (!SUPPORTED.has(alg)) {
        const close = SUPPORTED_ALGORITHMS.find((s) => s.toLowerCase() === alg.toLowerCase())
        report(ctx, at('algorithms', j), `unsupported algorithm ${describe(alg)}; ${close !== undefined ? `did you mean "${close}"?` : `expected one of ${SUPPORTED_ALGORITHMS.join(', ')}`}`)
      } else if (HMAC.has(alg) && !hasInline && !hasEnv) {
        report(ctx, at('algorithms', j), ctx.envMode
          ? `${alg} requires a client secret, which environment-only mode cannot configure; use a configuration file with clientSecret or clientSecretEnv`
          : `${alg} requires a client secret; set clientSecret or clientSecretEnv (HMAC ID tokens are signed with the client secret)`)
      } else {
        valid.push(alg as Algorithm)
      }
    })
  }
  // OpenID Connect Core §10.1: the HMAC key is the secret of the client the token is for. One secret checking
  // tokens for several clients would let any of them mint tokens for the others.
  const hmac = valid.filter((alg) => HMAC.has(alg))
  if (hmac.length > 0 && Array.isArray(issuer.audiences) && issuer.audiences.length > 1) {
    report(ctx, at('audiences'), `${hmac.join(', ')} tokens are signed with the client secret of one client, so audiences must be that ` +
      `client's id alone, got ${issuer.audiences.length}; list only the client whose secret this is (tokens of the provider's other ` +
      'clients cannot be checked with it), or remove the HS* algorithms to accept several audiences')
  }

  if (isRecord(issuer.claimMapping)) {
    for (const [field, path] of Object.entries(issuer.claimMapping)) {
      if (typeof path !== 'string' || path === '') continue
      try {
        parseClaimPath(path)
      } catch (err) {
        report(ctx, at('claimMapping', field), `expected a claim path such as realm_access.roles, groups[0] or ["https://example.com/roles"]: ${(err as Error).message}`)
      }
    }
  }

  if (secret !== undefined && secretPath !== undefined) {
    let needed: number = MIN_SECRET_BYTES.HS256
    let because = 'HS256 needs a key of at least 256 bits'
    for (const alg of valid) {
      if (HMAC.has(alg) && MIN_SECRET_BYTES[alg as HmacAlgorithm] > needed) {
        needed = MIN_SECRET_BYTES[alg as HmacAlgorithm]
        because = `${alg} in algorithms needs a key of at least ${needed * 8} bits`
      }
    }
    const bytes = Buffer.byteLength(secret, 'utf8')
    if (bytes < needed) {
      report(ctx, secretPath, `expected ${secretFrom}at least ${needed} bytes (${because}), got ${bytes} bytes`)
    }
  }
  return secret
}

/** HOST, PORT and LOG_LEVEL, which override the file. */
function serverFromEnv (env: NodeJS.ProcessEnv, problems: string[]): Partial<ServerConfig> {
  const out: Partial<ServerConfig> = {}
  const host = envValue(env, 'HOST')
  if (host !== undefined) {
    if (host.trim() !== host) problems.push(`${ENVIRONMENT}: HOST: expected a host name or address without surrounding spaces, got ${describe(host)}`)
    else if (isLocalhostName(host)) problems.push(`${ENVIRONMENT}: HOST: ${LOCALHOST_PROBLEM}`)
    else out.host = host
  }
  const port = envValue(env, 'PORT')
  if (port !== undefined) {
    if (/^[0-9]{1,5}$/.test(port) && Number(port) <= 65535) out.port = Number(port)
    else problems.push(`${ENVIRONMENT}: PORT: expected an integer from 0 to 65535, got ${describe(port)}`)
  }
  const level = envValue(env, 'LOG_LEVEL')
  if (level !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(level)) out.logLevel = level as ServerConfig['logLevel']
    else problems.push(`${ENVIRONMENT}: LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got ${describe(level)}`)
  }
  return out
}

/** The document of environment-only mode: a single issuer from OIDC_* variables. */
function environmentDocument (env: NodeJS.ProcessEnv): unknown {
  const list = (value: string): string[] => value.split(',').map((item) => item.trim())
  const issuer: Record<string, unknown> = {
    id: envValue(env, 'OIDC_ISSUER_ID') ?? DEFAULT_ENV_ISSUER_ID,
    issuer: envValue(env, 'OIDC_ISSUER')
  }
  const audience = envValue(env, 'OIDC_AUDIENCE')
  if (audience !== undefined) issuer.audiences = list(audience)
  const algorithms = envValue(env, 'OIDC_ALGORITHMS')
  if (algorithms !== undefined) issuer.algorithms = list(algorithms)
  const jwksUri = envValue(env, 'OIDC_JWKS_URI')
  if (jwksUri !== undefined) issuer.jwksUri = jwksUri
  const keyFiles = envValue(env, 'OIDC_DECRYPTION_KEY_FILE')
  if (keyFiles !== undefined) issuer.decryptionKeys = list(keyFiles)
  const callers = callersFromEnv(env)
  return callers === undefined ? { issuers: [issuer] } : { callers, issuers: [issuer] }
}

function defined<T extends object> (value: T | undefined): Partial<T> {
  const out: Partial<T> = {}
  if (value === undefined) return out
  for (const [key, v] of Object.entries(value)) {
    if (v !== undefined) (out as Record<string, unknown>)[key] = v
  }
  return out
}

/** Validates everything, reporting into ctx.problems; the resolved Config only when there was no problem. */
function resolve (input: unknown, ctx: Ctx, problems: string[]): Config | undefined {
  // Presets fill in options first: the result is validated like an issuer written out by hand.
  const doc = expandPresets(input)
  check(ConfigFileSchema as unknown as Schema, doc, [], ctx)

  const secrets = new Map<number, string>()
  const extras = new Map<number, ProviderExtras>()
  if (isRecord(doc)) {
    checkServer(doc.server, ctx)
    checkJwksCache(doc.jwks, ctx)
    checkOperations(doc, ctx.env, (path, text) => { report(ctx, path, text) })
    checkForwardAuth(doc, (path, text) => { report(ctx, path, text) })
    checkRevocation(doc, ctx.env, (path, text) => { report(ctx, path, text) })
    if (Array.isArray(doc.issuers)) {
      const ids = new Map<string, number>()
      doc.issuers.forEach((issuer: unknown, i) => {
        if (!isRecord(issuer)) return
        if (typeof issuer.id === 'string') {
          const first = ids.get(issuer.id)
          if (first !== undefined) report(ctx, ['issuers', i, 'id'], `duplicate id ${describe(issuer.id)} (also issuers[${first}].id); expected unique ids`)
          else ids.set(issuer.id, i)
        }
        const secret = checkIssuer(issuer, i, ctx)
        if (secret !== undefined) secrets.set(i, secret)
        extras.set(i, checkProviderOptions(issuer, {
          report: (path, text) => { report(ctx, ['issuers', i, ...path], text) },
          checkUrl: (value, path) => checkUrl(value, ['issuers', i, ...path], ctx),
          readFile: ctx.readFile
        }))
      })
      checkIssuerNames(doc.issuers, (path, text) => { report(ctx, path, text) })
      checkDecryptionCandidates(doc.issuers, extras, (path, text) => { report(ctx, path, text) })
      // A jwks.maxEntries set by hand must hold every key set at once (the default grows with the issuers).
      const { needed, urls, discovered } = jwksEntriesNeeded(doc.issuers)
      const maxEntries = isRecord(doc.jwks) && doc.jwks.maxEntries !== undefined ? intField(doc.jwks, JwksCacheSchema as unknown as Schema, 'maxEntries', JWKS_DEFAULTS.maxEntries) : undefined
      if (maxEntries !== undefined && maxEntries < needed) {
        report(ctx, ['jwks', 'maxEntries'], `expected at least ${needed}: one per JWKS URL (${urls}), and one more per provider found by discovery ` +
          `(${discovered}), for the new key set while a moved jwks_uri is followed; got ${maxEntries} (leave it out for a bound that follows the issuers)`)
      }
    }
  }
  // Stable sort: within a section or an issuer, shape problems come before the semantic ones.
  problems.push(...ctx.reports.sort((a, b) => a.rank - b.rank).map((r) => r.text))
  const serverEnv = serverFromEnv(ctx.env, problems)
  // PORT overrides server.port after the file's checks: the two listeners must still differ.
  const opsPort = isRecord(doc) && isRecord(doc.server) ? doc.server.opsPort : undefined
  if (serverEnv.port !== undefined && typeof opsPort === 'number' && opsPort !== 0 && opsPort === serverEnv.port) {
    problems.push(`${ENVIRONMENT}: PORT: expected a port other than server.opsPort (${opsPort}) of ${ctx.source}`)
  }
  if (problems.length > 0) return undefined

  // Everything conforms: build the resolved configuration.
  const file = doc as ConfigFile
  const server: ServerConfig = {
    ...SERVER_DEFAULTS,
    ...defined(file.server),
    ...serverEnv,
    trustProxy: Array.isArray(file.server?.trustProxy) ? [...file.server.trustProxy] : (file.server?.trustProxy ?? SERVER_DEFAULTS.trustProxy)
  } as ServerConfig
  return {
    server,
    rateLimit: { ...RATE_LIMIT_DEFAULTS, ...defined(file.rateLimit) },
    jwks: { ...JWKS_DEFAULTS, maxEntries: Math.max(JWKS_DEFAULTS.maxEntries, jwksEntriesNeeded(file.issuers).needed), ...defined(file.jwks) },
    fetch: { ...FETCH_DEFAULTS, ...defined(file.fetch) },
    tokenCache: { ...TOKEN_CACHE_DEFAULTS, ...defined(file.tokenCache) },
    ...resolveOperations(file, ctx.env),
    ...resolveForwardAuth(file),
    revocation: resolveRevocation(file, ctx.env),
    issuers: file.issuers.map((issuer, i) => ({
      ...resolveIssuer(issuer, secrets.get(i)),
      ...resolveProviderOptions(issuer, extras.get(i), server.maxTokenBytes)
    })),
    source: ctx.source
  }
}

function resolveIssuer (issuer: IssuerFile, secret: string | undefined): IssuerConfig {
  const algorithms = [...(issuer.algorithms ?? ISSUER_DEFAULTS.algorithms)] as Algorithm[]
  let keys: KeySource = { kind: 'discovery' }
  if (issuer.jwks !== undefined) keys = { kind: 'inline', jwks: structuredClone(issuer.jwks) as JsonWebKeySet }
  else if (issuer.jwksUri !== undefined) keys = { kind: 'jwksUri', jwksUri: issuer.jwksUri }

  // fromEntries defines own properties, so even a claim named "__proto__" stays a plain key.
  const requiredClaims: Record<string, string[]> = Object.fromEntries(
    Object.entries(issuer.requiredClaims ?? {}).map(([claim, value]) => [claim, typeof value === 'string' ? [value] : [...value]])
  )
  const claimMapping: Partial<Record<MappableField, ClaimMappingValue>> = defined(issuer.claimMapping)

  const resolved: IssuerConfig = {
    id: issuer.id,
    issuer: issuer.issuer,
    audiences: [...issuer.audiences],
    authorizedParties: [...(issuer.authorizedParties ?? ISSUER_DEFAULTS.authorizedParties)],
    algorithms,
    keys,
    clockToleranceSeconds: issuer.clockToleranceSeconds ?? ISSUER_DEFAULTS.clockToleranceSeconds,
    requiredClaims,
    claimMapping
  }
  // The secret is kept only when HMAC is actually allowed (types.ts: undefined when HMAC is not allowed).
  if (secret !== undefined && algorithms.some((alg) => HMAC.has(alg))) resolved.clientSecret = secret
  if (issuer.maxTokenAgeSeconds !== undefined) resolved.maxTokenAgeSeconds = issuer.maxTokenAgeSeconds
  return resolved
}
