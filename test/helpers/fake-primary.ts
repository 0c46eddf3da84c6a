/** A stand-in for a cluster worker's channel to its primary: records what the worker sends, tells it messages. */
import { EventEmitter } from 'node:events'
import type { PrimaryChannel } from '../../src/cluster-primary.js'

export type FakePrimary = PrimaryChannel & { sent: Array<Record<string, unknown>>, tell: (message: unknown) => void }

export function fakePrimary (): FakePrimary {
  const events = new EventEmitter()
  const sent: Array<Record<string, unknown>> = []
  return {
    sent,
    send: (message, callback) => { sent.push(message as Record<string, unknown>); callback(null); return true },
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener),
    tell: (message) => { events.emit('message', message) }
  }
}
