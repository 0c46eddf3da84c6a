/**
 * Stop signals (src/stop-signals.ts): the first starts a graceful stop; copies of it (a process-group signal
 * that also arrives forwarded by npm or the cluster primary) change nothing; a later repeat forces, except in
 * a cluster worker, where only the primary decides. Before a stop action exists, a stop ends start-up cleanly.
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { onStopSignals, ProcessStop, REPEAT_WINDOW_MS, type StopSignal } from '../src/stop-signals.js'

function harness (repeatForces: boolean): { target: EventEmitter, events: string[], advance: (ms: number) => void, remove: () => void } {
  const target = new EventEmitter()
  const events: string[] = []
  let clock = 1_000_000
  const remove = onStopSignals({
    stop: (s) => events.push(`stop ${s}`),
    force: (s) => events.push(`force ${s}`),
    ignored: (s) => events.push(`ignored ${s}`)
  }, { repeatForces, now: () => clock, target: target as unknown as NodeJS.Process })
  return { target, events, advance: (ms) => { clock += ms }, remove }
}

t.test('the first signal stops; copies within the window are ignored; a later one forces', async (t) => {
  const h = harness(true)
  h.target.emit('SIGTERM', 'SIGTERM')
  h.advance(5)
  h.target.emit('SIGTERM', 'SIGTERM') // the parent's forwarded copy
  h.advance(REPEAT_WINDOW_MS - 10)
  h.target.emit('SIGINT', 'SIGINT') // still within the window: a copy of the same event, whatever its name
  t.same(h.events, ['stop SIGTERM', 'ignored SIGTERM', 'ignored SIGINT'])
  h.advance(5)
  h.target.emit('SIGINT', 'SIGINT')
  t.same(h.events.at(-1), 'force SIGINT', 'a repeat after the window is an operator asking again: stop now')
})

t.test('a cluster worker never forces on a repeat: its primary decides', async (t) => {
  const h = harness(false)
  h.target.emit('SIGINT', 'SIGINT')
  h.target.emit('SIGINT', 'SIGINT')
  h.advance(60_000)
  h.target.emit('SIGTERM', 'SIGTERM')
  t.same(h.events, ['stop SIGINT', 'ignored SIGINT', 'ignored SIGTERM'])
})

t.test('the returned function removes the listeners', async (t) => {
  const h = harness(true)
  t.equal(h.target.listenerCount('SIGTERM'), 1)
  h.remove()
  t.equal(h.target.listenerCount('SIGTERM') + h.target.listenerCount('SIGINT'), 0)
})

t.test('ProcessStop: before the service sets its stop, a signal ends start-up with exit 0 and a line', async (t) => {
  const target = new EventEmitter()
  const lines: string[] = []
  const exits: number[] = []
  const stops: StopSignal[] = []
  let clock = 0
  new ProcessStop({ repeatForces: true, hangup: 'reload', now: () => clock, target: target as unknown as NodeJS.Process, write: (l) => lines.push(l), exit: (c) => exits.push(c) })
  target.emit('SIGTERM', 'SIGTERM')
  t.same(exits, [0])
  t.match(lines[0], /SIGTERM during start-up: stopping before listening/)

  // With a stop action set, it gets the first signal; without a force action, a forcing repeat exits 1.
  const fresh = new EventEmitter()
  const withAction = new ProcessStop({ repeatForces: true, hangup: 'reload', now: () => clock, target: fresh as unknown as NodeJS.Process, write: (l) => lines.push(l), exit: (c) => exits.push(c) })
  withAction.whenStopping((s) => stops.push(s))
  fresh.emit('SIGINT', 'SIGINT')
  t.same(stops, ['SIGINT'])
  t.same(exits, [0], 'a stop action set: no exit from ProcessStop itself')
  clock += REPEAT_WINDOW_MS
  fresh.emit('SIGINT', 'SIGINT')
  t.same(exits, [0, 1])
  t.match(lines.at(-1), /second SIGINT: exiting now/)
})

t.test('ProcessStop: a copy is reported only where repeats can force', async (t) => {
  for (const repeatForces of [true, false]) {
    const target = new EventEmitter()
    const ignored: StopSignal[] = []
    const signals = new ProcessStop({ repeatForces, hangup: 'reload', now: () => 0, target: target as unknown as NodeJS.Process, write: () => {}, exit: () => {} })
    signals.whenStopping(() => {}, () => {}, (s) => ignored.push(s))
    target.emit('SIGTERM', 'SIGTERM')
    target.emit('SIGTERM', 'SIGTERM')
    t.same(ignored, repeatForces ? ['SIGTERM'] : [], repeatForces ? 'the copy is reported' : 'a cluster worker leaves that to its primary')
  }
})

t.test('ProcessStop: a SIGHUP during start-up is kept for the service where it reloads, and stops where it stops', async (t) => {
  const target = new EventEmitter()
  const lines: string[] = []
  const exits: number[] = []
  const signals = new ProcessStop({ repeatForces: true, hangup: 'reload', target: target as unknown as NodeJS.Process, write: (l) => lines.push(l), exit: (c) => exits.push(c) })
  target.emit('SIGHUP', 'SIGHUP')
  target.emit('SIGHUP', 'SIGHUP')
  t.match(lines, [/SIGHUP during start-up: the configuration is read again once the service has started/], 'said once')
  t.same(exits, [], 'not a stop')
  // The service starts and handles SIGHUP itself: the kept SIGHUP reaches it, once.
  const reloads: string[] = []
  signals.whenStopping(() => {})
  target.on('SIGHUP', () => reloads.push('reload'))
  signals.replayHangup()
  signals.replayHangup()
  t.same(reloads, ['reload'])
  target.emit('SIGHUP', 'SIGHUP')
  t.equal(lines.length, 1, 'once the service runs, SIGHUP is its business alone')

  const devTarget = new EventEmitter()
  const dev = new ProcessStop({ repeatForces: true, hangup: 'stop', target: devTarget as unknown as NodeJS.Process, write: (l) => lines.push(l), exit: (c) => exits.push(c) })
  devTarget.emit('SIGHUP', 'SIGHUP')
  t.same(exits, [0], 'npm run dev stops on SIGHUP, during start-up too')
  t.match(lines.at(-1), /SIGHUP during start-up: stopping before listening/)
  dev.replayHangup() // nothing kept
})
