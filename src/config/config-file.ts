/**
 * Locating, reading and parsing the configuration file: `--config PATH` on the command line, the file's text
 * (at most MAX_CONFIG_FILE_BYTES of valid UTF-8), and YAML or JSON by the file's extension. JSON gets a strict
 * scanner (line and column, duplicate keys); YAML errors are put in words that never quote the text at fault.
 * Each problem is pushed as a line of its own; src/config/load.ts validates the parsed document.
 */
import { extname } from 'node:path'
import { isAlias, isMap, isPair, isSeq, parseDocument, visit, type Document, type YAMLError } from 'yaml'
import { fileErrorReason, readSmallFileSync } from '../small-file.js'

const COMMAND_LINE = 'command line'

/**
 * An argument as a problem may quote it: a token put where a path goes (a mistyped command line) is described,
 * never shown, and anything else at most its first 60 characters. ("eyJ" begins every JOSE header.)
 */
function describeArg (arg: string): string {
  if (arg.includes('eyJ')) return `an argument of ${arg.length} characters that looks like a token (not shown)`
  return JSON.stringify(arg.length > 60 ? `${arg.slice(0, 60)}...` : arg)
}

export function configPathFromArgv (argv: readonly string[], problems: string[]): string | undefined {
  let found: string | undefined
  let count = 0
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      // The end of the options: what follows would be ignored, and `node dist/server.js -- --config PATH` would start
      // from the environment without the file. (npm start -- --config PATH hands npm the "--", not the service.)
      for (const rest of argv.slice(i + 1)) {
        problems.push(`${COMMAND_LINE}: ${describeArg(rest)}: after "--", which ends the options; expected --config PATH before it, or no "--"`)
      }
      break
    }
    let value: string | undefined
    if (arg === '--config') {
      value = argv[i + 1]
      if (value !== undefined && !value.startsWith('-')) i++
      else value = ''
    } else if (arg.startsWith('--config=')) {
      value = arg.slice('--config='.length)
    } else {
      // A misspelt --config, or a bare path, would otherwise start the service from the environment instead.
      problems.push(`${COMMAND_LINE}: ${describeArg(arg)}: unknown argument; expected only --config PATH (or none, with OIDC_VERIFIER_CONFIG or the OIDC_* variables)`)
      continue
    }
    count++
    if (value === '') problems.push(`${COMMAND_LINE}: --config: expected a file path`)
    else if (value.includes('eyJ')) problems.push(`${COMMAND_LINE}: --config: expected a file path, got ${describeArg(value)}`)
    else found ??= value
  }
  if (count > 1) problems.push(`${COMMAND_LINE}: --config: given ${count} times; expected it once`)
  return found
}

/** A configuration is kilobytes: a file far larger is a mistake, and parsing it could exhaust the heap. */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024

/**
 * A configuration file's text (also the key files it names): a regular file (src/small-file.ts: a FIFO would block
 * the event loop at start and on a reload until a writer came, a device has no end) of at most
 * MAX_CONFIG_FILE_BYTES of valid UTF-8 (a replacement character would change a value silently).
 */
export function readConfigText (path: string): string {
  const bytes = readSmallFileSync(path, MAX_CONFIG_FILE_BYTES)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new Error('it is not valid UTF-8 text (save it as UTF-8)')
  }
}

/** Reads and parses the file; undefined when that failed (the problems say why). */
export function readConfigFile (path: string, readFile: (path: string) => string, problems: string[]): unknown {
  const ext = extname(path).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    problems.push(`${path}: expected a file name ending in .yaml, .yml or .json (the extension selects the format)`)
    return undefined
  }
  let text: string
  try {
    text = readFile(path)
  } catch (err) {
    const why = (err as NodeJS.ErrnoException | undefined)?.code !== undefined ? fileErrorReason(err) : (err instanceof Error ? err.message : String(err))
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

/**
 * YAML 1.1's tags that make a Map, Set, Buffer or Date (or pairs): taken out of the schema, also of the YAML 1.1
 * schema that a document starting with "%YAML 1.1" is read with (resolveKnownTags only keeps them out of YAML 1.2's).
 */
const NON_JSON_TAGS = ['omap', 'pairs', 'set', 'binary', 'timestamp']

function parseYamlText (path: string, text: string, problems: string[]): unknown {
  // Only the core schema's tags (!!str, !!int, …): YAML 1.1's !!omap, !!set, !!binary and !!timestamp would make a
  // Map, Set, Buffer or Date, which the checks would take for an empty mapping (a requirement dropped).
  const doc = parseDocument(text, {
    prettyErrors: true,
    uniqueKeys: true,
    resolveKnownTags: false,
    customTags: (tags) => tags.filter((tag) => !NON_JSON_TAGS.some((name) => typeof tag === 'string' ? tag === name : tag.tag === `tag:yaml.org,2002:${name}`))
  })
  // yaml only warns of a tag it does not know, and keeps the text: !ENV ${SECRET} (or !secret, !vault …, from tools
  // that expand them) would silently become the value itself, a client secret that anyone reading the file knows.
  // The stack overflows once per collection still open around the point: the first says it.
  const errors = [...doc.errors, ...doc.warnings.filter((warning) => warning.code === 'TAG_RESOLVE_FAILED')]
    .filter((err, i, all) => err.code !== 'RESOURCE_EXHAUSTION' || all.findIndex((e) => e.code === err.code) === i)
  if (errors.length > 0) {
    for (const err of errors) {
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
  if (aliasedValues(doc) > MAX_ALIASED_VALUES) {
    problems.push(`${path}: invalid YAML: aliases (*name) repeat more than ${MAX_ALIASED_VALUES} values; expected a configuration that anchors small parts (write large lists out)`)
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
 * How many values the aliases add, counted before they are expanded. yaml's maxAliasCount bounds how many
 * aliases there are, not what each repeats: 99 aliases of a 500000-item list made 50 million values from a
 * 4 MB file, which ran the checks for minutes and then out of heap. Configurations anchor a few values.
 */
const MAX_ALIASED_VALUES = 100_000

function aliasedValues (doc: Document): number {
  const sizes = new Map<unknown, number>()
  const size = (node: unknown): number => {
    if (isAlias(node)) return size(node.resolve(doc))
    if (!isMap(node) && !isSeq(node)) return 1
    const known = sizes.get(node)
    if (known !== undefined) return known
    sizes.set(node, 0) // an alias inside its own anchor: yaml's toJS reports it
    let total = 1
    for (const item of node.items) total += isPair(item) ? size(item.key) + size(item.value) : size(item)
    const capped = Math.min(total, MAX_ALIASED_VALUES + 1)
    sizes.set(node, capped)
    return capped
  }
  let total = 0
  visit(doc, { Alias: (_key, alias) => { total += size(alias) } })
  return total
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
  TAG_RESOLVE_FAILED: 'a tag (!tag) is not one YAML knows; quote values that start with "!"',
  // yaml's words are the RangeError's ("Maximum call stack size exceeded"), which say nothing of the file.
  RESOURCE_EXHAUSTION: 'the values nest too deeply (a configuration nests a few levels); look for "[" or "{" that open more lists or mappings than meant'
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
