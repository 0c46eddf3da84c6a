/**
 * A pino logger at info (the service's options, src/logger.ts) whose lines the test reads back: `lines()` parsed,
 * `text()` as written. For tests that check what the service logs, and that it never logs what it must not.
 */
import { Writable } from 'node:stream'
import pino from 'pino'
import { loggerOptions } from '../../src/logger.js'

export interface LogCapture {
  lines: () => Array<Record<string, unknown>>
  text: () => string
  logger: pino.Logger
}

export function captureLog (): LogCapture {
  const raw: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { raw.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
  return {
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => raw.join('\n'),
    logger: pino(loggerOptions('info'), stream)
  }
}
