/** The app built from a configuration, listening on a free port of 127.0.0.1 (its TLS listener, when configured), closed at the test's end. */
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import type pino from 'pino'
import { buildApp } from '../../src/app.js'
import type { Config } from '../../src/config/types.js'

export type App = Awaited<ReturnType<typeof buildApp>>

export const portOf = (app: { server: { address: () => unknown } }): number => (app.server.address() as AddressInfo).port

export async function listening (t: Test, config: Config, logger?: pino.Logger): Promise<App> {
  const app = await buildApp(config, logger === undefined ? {} : { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}
