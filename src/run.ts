/**
 * Runs the service as a process: listen, and on SIGTERM/SIGINT stop accepting, finish requests in flight
 * and exit 0 within the configured grace period (close-with-grace). Shared by server.ts and dev.ts.
 */
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import type { Config } from './config/types.js'

export async function runService (config: Config, onClose?: () => Promise<void>): Promise<FastifyInstance> {
  const app = await buildApp(config)
  if (onClose !== undefined) app.addHook('onClose', onClose)
  closeWithGrace({ delay: config.server.shutdownGraceSeconds * 1000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
    await app.close()
  })
  await app.listen({ host: config.server.host, port: config.server.port })
  app.log.info({ issuers: config.issuers.map((i) => i.id), source: config.source }, 'oidc-verifier listening')
  return app
}
