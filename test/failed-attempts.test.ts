/** The per-address bound on failed caller-key checks: its window, its memory bound, and off at 0. */
import t from 'tap'
import { FailedAttempts, MAX_TRACKED_ADDRESSES } from '../src/auth/failed-attempts.js'

t.test('counts failures in a window that starts at the first one', async (t) => {
  let now = 1_000_000
  const f = new FailedAttempts(60_000, () => now)
  t.equal(f.blockedFor('a', 2), 0)
  f.record('a', 2)
  t.equal(f.blockedFor('a', 2), 0)
  now += 10_000
  f.record('a', 2)
  t.equal(f.blockedFor('a', 2), 50, 'blocked until the window that began at the first failure ends')
  t.equal(f.blockedFor('b', 2), 0)
  now += 50_000
  t.equal(f.blockedFor('a', 2), 0, 'the window ended')
  t.equal(f.size, 0, 'and the address is forgotten')
  f.record('a', 2)
  t.equal(f.blockedFor('a', 2), 0, 'a new window')
  t.equal(f.blockedFor('a', 1), 60, 'the bound is read per call (a reload may lower it)')
})

t.test('0 turns it off; memory is bounded', async (t) => {
  const f = new FailedAttempts(60_000)
  for (let i = 0; i < 5; i++) f.record('a', 0)
  t.equal(f.blockedFor('a', 0), 0)
  t.equal(f.size, 0)
  for (let i = 0; i < MAX_TRACKED_ADDRESSES + 100; i++) f.record(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 5)
  t.equal(f.size, MAX_TRACKED_ADDRESSES)
})

t.test('the window\'s edges: a failure at its very end starts a new one, the wait rounds up, 0 after failures lets all through', async (t) => {
  let now = 1_000_000
  const f = new FailedAttempts(60_000, () => now)
  f.record('a', 1)
  now += 10_500
  t.equal(f.blockedFor('a', 1), 50, '49.5 s left: wait 50 s (rounded up, never an early retry)')
  t.equal(f.blockedFor('a', 0), 0, 'a reload that turns the bound off lets a blocked address through')
  now = 1_060_000
  f.record('a', 1)
  t.equal(f.blockedFor('a', 1), 60, 'a failure when the window ends starts a new window of its own')
})

t.test('active: while some window runs, and no longer once the last one has ended, though its address was never met again', async (t) => {
  let now = 1_000_000
  const f = new FailedAttempts(60_000, () => now)
  t.notOk(f.active, 'no failure yet')
  f.record('a', 5)
  now += 30_000
  f.record('b', 5)
  t.ok(f.active)
  now += 31_000
  t.ok(f.active, 'a\'s window has ended, b\'s runs')
  t.equal(f.blockedFor('a', 5), 0)
  now += 29_000
  t.notOk(f.active, 'b\'s window has ended too')
  t.equal(f.size, 1, 'b is still held (dropped when met again): active does not depend on that')
  f.record('b', 5)
  t.ok(f.active, 'a new window for b')
})
