/**
 * The `oidc-verifier` command line: argument parsing, the commands, exit codes. src/cli.ts runs it; tests
 * call main() with their own streams and environment.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { parseWorkers } from '../cluster-primary.js'
import { withinHeapBudget } from '../config/heap-budget.js'
import { ConfigError, loadConfig } from '../config/load.js'
import type { Config } from '../config/types.js'
import { silentLogger, type Logger } from '../core/logger.js'
import type { RequestChecks } from '../core/verifier.js'
import { loggerOptions } from '../logger.js'
import type { FetchJson } from '../net/fetch-json.js'
import { checkIssuers, hasProblems, renderConfigWarnings, renderTable } from './check-config.js'
import { describeRejection, verifyToken } from './verify-token.js'

export const EXIT = {
  ok: 0,
  /** check-config found a problem; verify rejected the token. */
  failed: 1,
  /** The configuration is invalid (the same code as the service's). */
  invalidConfig: 2,
  /** verify: the token could be neither accepted nor rejected (keys unavailable). */
  undecided: 3,
  /** Wrong arguments. */
  usage: 64
} as const

/** A token read from standard input is cut off here: a token is a few kilobytes. */
export const MAX_STDIN_BYTES = 1024 * 1024
export const DEFAULT_WAIT_SECONDS = 10

export const USAGE = `Usage:
  oidc-verifier check-config [--config PATH] [--json] [--strict]
  oidc-verifier verify [TOKEN | -] [--config PATH] [--json] [--timeout SECONDS]
                       [--nonce VALUE] [--max-age SECONDS] [--audience CLIENT_ID]
  oidc-verifier --help | --version

Commands:
  check-config  Validate the configuration, resolve every issuer's discovery and JWKS, and print a table of
                issuers with their usable key counts and problems. Exit 1 on any problem.
  verify        Verify one ID token with the same configuration and rules as the service. Prints the
                normalized identity as JSON, or the error code, message and hint, and what the token claims
                (unverified) next to the configuration. "-" reads the token from standard input; prefer it,
                as a token on the command line is visible to other users of the machine.

Options:
  --config PATH      YAML or JSON configuration file (default: OIDC_VERIFIER_CONFIG, or the single-issuer
                     environment variables OIDC_ISSUER, OIDC_AUDIENCE, ...), as for the service
  --json             machine-readable output on standard output
  --strict           check-config: keys that the service will never use (wrong "use", short RSA, ...) and
                     settings it ignores (a client secret without HS*, ...) are problems too, not warnings
  --timeout SECONDS  verify: longest wait for the issuer's keys (default ${DEFAULT_WAIT_SECONDS})
  --nonce, --max-age, --audience
                     verify: the request checks of POST /verify (nonce, maxAge, audience)
  --verbose          log the verifier's own messages (JSON) to standard error

Exit codes: 0 ok; 1 problem found or token rejected; 2 invalid configuration; 3 keys unavailable (the token
could not be decided); 64 wrong arguments.
`

export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Standard input as text, read when the token is "-". */
  readStdin: (maxBytes: number) => Promise<string>
  env: NodeJS.ProcessEnv
  /** Outbound fetcher; injectable for tests (production uses src/net/fetch-json.ts). */
  fetcher?: FetchJson
}

const OPTIONS = {
  config: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  strict: { type: 'boolean' },
  timeout: { type: 'string' },
  nonce: { type: 'string' },
  'max-age': { type: 'string' },
  audience: { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' }
} as const

class UsageError extends Error {}

/**
 * An argument as a usage error may quote it: a mistyped command line can hold a token (the verify command
 * forgotten, a token in an option's place), and stderr ends up in CI and job logs. Long or token-shaped
 * arguments are described, never quoted.
 */
function shown (arg: string): string {
  return arg.length > 32 || arg.includes('eyJ') ? `an argument of ${arg.length} characters` : JSON.stringify(arg)
}

function version (): string {
  // src/cli and dist/cli are both one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

function seconds (value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^[0-9]{1,9}$/.test(value)) throw new UsageError(`--${name}: expected a whole number of seconds, got ${shown(value)}`)
  return Number(value)
}

function load (configPaths: string[] | undefined, env: NodeJS.ProcessEnv): Config {
  if (configPaths !== undefined && configPaths.length > 1) throw new UsageError('--config: given more than once; expected it once')
  // --config=PATH keeps a path that starts with "-" a path.
  // WORKERS too, which the service refuses before it reads anything else (src/start.ts).
  const workers = parseWorkers(env.WORKERS, availableParallelism())
  if (workers instanceof Error) throw new ConfigError([`environment: ${workers.message}`])
  // The heap check as the service makes it: run under the service's NODE_OPTIONS, check-config sees its limit.
  return withinHeapBudget(loadConfig({ argv: configPaths === undefined ? [] : [`--config=${configPaths[0]}`], env }))
}

function cliLogger (verbose: boolean | undefined, io: CliIo): Logger {
  if (verbose !== true) return silentLogger
  return pino(loggerOptions('debug'), { write: (line: string) => io.stderr(line) })
}

export async function main (argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    // Node's message quotes the offending option; an argument that may be a token is described instead.
    let message = (err as Error).message
    for (const arg of argv) if (shown(arg) !== JSON.stringify(arg)) message = message.replaceAll(arg, `<${shown(arg)}>`)
    io.stderr(`oidc-verifier: ${message}\nRun "oidc-verifier --help" for usage.\n`)
    return EXIT.usage
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    io.stdout(USAGE)
    return EXIT.ok
  }
  if (values.version === true) {
    io.stdout(`${version()}\n`)
    return EXIT.ok
  }
  const [command, ...rest] = positionals
  try {
    switch (command) {
      case 'check-config':
        if (rest.length > 0) throw new UsageError(`check-config takes no arguments, got ${shown(rest[0] as string)}`)
        return await checkConfigCommand(values, io)
      case 'verify':
        if (rest.length > 1) throw new UsageError('verify takes one token (or "-" for standard input)')
        return await verifyCommand(rest[0], values, io)
      case undefined:
        throw new UsageError('a command is required')
      default:
        throw new UsageError(`unknown command ${shown(command)}`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`oidc-verifier: ${err.message}\nRun "oidc-verifier --help" for usage.\n`)
      return EXIT.usage
    }
    if (err instanceof ConfigError) {
      io.stderr(`oidc-verifier: invalid configuration:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`)
      return EXIT.invalidConfig
    }
    throw err
  }
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

async function checkConfigCommand (values: Values, io: CliIo): Promise<number> {
  const config = load(values.config, io.env)
  const strict = values.strict === true
  const reports = await checkIssuers(config, io.fetcher)
  // Settings the configuration ignores are warnings, like keys never used: problems only with --strict.
  const failed = hasProblems(reports, strict) || (strict && config.warnings.length > 0)
  if (values.json === true) {
    io.stdout(`${JSON.stringify({ source: config.source, ok: !failed, warnings: config.warnings, issuers: reports }, null, 2)}\n`)
  } else {
    const withProblems = reports.filter((r) => hasProblems([r], strict)).length
    const ignored = config.warnings.length
    io.stdout(`configuration: ${config.source} (valid)\n${renderConfigWarnings(config.warnings, strict)}\n${renderTable(reports, strict)}\n\n` +
      `${reports.length} issuer${reports.length === 1 ? '' : 's'}: ${reports.length - withProblems} ok, ${withProblems} with problems` +
      `${ignored === 0 ? '' : `; ${ignored} setting${ignored === 1 ? '' : 's'} ignored`}\n`)
  }
  return failed ? EXIT.failed : EXIT.ok
}

async function readToken (arg: string, io: CliIo): Promise<string> {
  if (arg !== '-') {
    // Said every time, not only in --help: a token proves a login, and an argument is seen by others.
    io.stderr('oidc-verifier: note: a token given as an argument lands in the shell history and the process list; pass "-" and the token on standard input instead\n')
    return arg
  }
  const text = (await io.readStdin(MAX_STDIN_BYTES)).trim()
  if (text === '') throw new UsageError('no token on standard input')
  return text
}

async function verifyCommand (arg: string | undefined, values: Values, io: CliIo): Promise<number> {
  // Arguments first, so that a usage error never waits for standard input or the network.
  const timeoutMs = seconds(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS) * 1000
  const checks: RequestChecks = {}
  if (values.nonce !== undefined) {
    // As POST /verify's nonce (minLength 1): an empty one would pass a token whose nonce is empty.
    if (values.nonce === '') throw new UsageError('--nonce: expected the nonce of the authorization request, got an empty value')
    checks.nonce = values.nonce
  }
  if (values['max-age'] !== undefined) checks.maxAge = seconds(values['max-age'], 'max-age', 0)
  if (values.audience !== undefined) checks.audience = values.audience
  if (arg === undefined) throw new UsageError('verify needs a token: give it as an argument, or "-" to read it from standard input')
  const config = load(values.config, io.env)
  // As POST /verify's 400 request_invalid: a mistyped audience is the operator's mistake, not a token to blame
  // (audience_mismatch's hint says to change the configuration).
  const audience = checks.audience
  if (audience !== undefined && !config.issuers.some((issuer) => issuer.audiences.includes(audience))) {
    throw new UsageError(`--audience: ${shown(audience)} is not a configured audience; expected one of the issuers' audiences`)
  }
  const token = await readToken(arg, io)

  const outcome = await verifyToken(config, token, { timeoutMs, checks, logger: cliLogger(values.verbose, io), fetcher: io.fetcher })
  if (outcome.valid) {
    io.stdout(`${JSON.stringify(outcome.identity, null, 2)}\n`)
    return EXIT.ok
  }
  if (values.json === true) {
    const { valid: _valid, keyStatus, ...error } = outcome
    io.stdout(`${JSON.stringify({ ...error, ...(keyStatus === undefined ? {} : { keys: keyStatus }) }, null, 2)}\n`)
  } else {
    io.stderr(`${describeRejection(outcome, token, config, Date.now() / 1000)}\n`)
  }
  return outcome.code === 'keys_unavailable' ? EXIT.undecided : EXIT.failed
}
