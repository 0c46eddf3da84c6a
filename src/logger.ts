/**
 * pino settings shared by the service and the CLI. The request log line is written by src/http/request-log.ts
 * from chosen fields only; redaction is the second line of defence for anything else that logs a request.
 */
import cluster from 'node:cluster'
import type { LoggerOptions } from 'pino'
import type { ServerConfig } from './config/types.js'

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.body',
  'body',
  'token',
  'accessToken',
  'claims'
]

export function loggerOptions (level: ServerConfig['logLevel']): LoggerOptions {
  return {
    level,
    // A cluster worker's lines say which worker (WORKERS=N): the primary's lines name workers by pid.
    base: cluster.isWorker ? { service: 'oidc-verifier', pid: process.pid } : { service: 'oidc-verifier' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: () => `,"time":"${new Date().toISOString()}"`
  }
}
