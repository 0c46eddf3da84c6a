/**
 * Runs the service as a process: listen, and on SIGTERM/SIGINT stop accepting, finish requests in flight
 * and exit 0 within the configured grace period (close-with-grace). Shared by server.ts and dev.ts.
 */
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { logConfigWarnings } from './config/inert-settings.js'
import type { Config } from './config/types.js'
import { buildOpsApp } from './ops-app.js'
import { reloadOnSighup, type ReloadOptions } from './reload.js'
import { NOT_GRACEFUL_SIGNALS, type ProcessStop, type StopSignal } from './stop-signals.js'

/**
 * `signals`: the process's stop signals, installed by the caller before start-up (src/server.ts, src/dev.ts).
 * `reload` reads the configuration again from its source: given, SIGHUP reloads it (src/reload.ts).
 */
export async function runService (config: Config, signals: ProcessStop, onClose?: () => Promise<void>, reload?: () => Config, reloadOptions?: ReloadOptions): Promise<FastifyInstance> {
  const app = await buildApp(config)
  logConfigWarnings(app.log, config.warnings)
  if (onClose !== undefined) app.addHook('onClose', onClose)
  // server.opsPort: health and metrics on their own listener, closed with the main one.
  const ops = config.server.opsPort === undefined ? undefined : await buildOpsApp(app, config)
  if (ops !== undefined) closeOpsWithApp(app, ops)
  // close-with-grace: the grace period, and a stop on an uncaught error. No signal of its own list but SIGHUP
  // without a reload (npm run dev): SIGTERM and SIGINT come through `signals`, which tells a repeated signal from
  // copies of one, and the others are not stops (src/stop-signals.ts); with a reload, SIGHUP reloads.
  let stopSignal: StopSignal | undefined
  let closing = false
  const grace = closeWithGrace({
    delay: config.server.shutdownGraceSeconds * 1000,
    skip: [...NOT_GRACEFUL_SIGNALS, ...(reload === undefined ? [] : ['SIGHUP' as const])]
  }, async ({ signal, err }) => {
    closing = true
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal: signal ?? stopSignal }, 'shutting down: no new connections, finishing requests in flight')
    await app.close()
  })
  signals.whenStopping((signal) => {
    // Already stopping (after an uncaught error, or a SIGHUP without reload): that stop goes on; close-with-grace
    // would run its close a second time.
    if (closing) {
      app.log.info({ signal }, 'already stopping')
      return
    }
    stopSignal = signal
    grace.close() // close-with-grace exits the process itself: 0, or 1 after an error or at the grace limit
  }, (signal) => {
    app.log.error({ signal }, 'second stop signal: exiting now, requests in flight are cut off')
    process.exit(1)
  }, (signal) => { app.log.info({ signal }, 'already stopping: send the signal again after a second to stop at once') })
  if (reload !== undefined) {
    reloadOnSighup(app, reload, reloadOptions)
    signals.replayHangup()
  }
  await app.listen({ host: config.server.host, port: config.server.port })
  app.log.info({ issuers: config.issuers.map((i) => i.id), source: config.source, signatureChecks: app.verifier.signatureChecks }, 'oidc-verifier listening')
  if (ops !== undefined) {
    await ops.listen({ host: config.server.opsHost ?? config.server.host, port: config.server.opsPort })
    app.log.info({ addresses: ops.addresses().map((a) => typeof a === 'string' ? a : `${a.address}:${a.port}`) }, 'health and metrics listening on the ops port')
  }
  return app
}

/**
 * The ops listener closes as soon as the main app starts closing (its preClose, when the main listener stops
 * accepting), not after the requests in flight have finished: probes must see the process not ready for the
 * whole grace period. The main app's close then waits for it (onClose).
 */
export function closeOpsWithApp (app: FastifyInstance, ops: FastifyInstance): void {
  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing ??= ops.close()
    await closing
  }
  // Not awaited here: a slow request on the ops listener must not delay the main listener's close.
  app.addHook('preClose', async () => { close().catch(() => {}) })
  app.addHook('onClose', close)
}
