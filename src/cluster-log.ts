/**
 * The log lines of the cluster primary (WORKERS=N), which serves no requests and builds no pino logger: one
 * JSON line on stderr in the workers' format (pino's numeric levels, ISO time, service), so that one log
 * pipeline reads both.
 */
export const LOG_LEVEL = { info: 30, warn: 40, error: 50 } as const
export type LogLevelNumber = typeof LOG_LEVEL[keyof typeof LOG_LEVEL]

export type ClusterLog = (msg: string, level?: LogLevelNumber) => void

export const clusterLog: ClusterLog = (msg, level = LOG_LEVEL.info) => {
  process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), service: 'oidc-verifier', component: 'cluster', msg })}\n`)
}
