/**
 * The admission filter of the verified-token cache (src/core/seen-filter.ts): no false negatives within a
 * generation, forgetting after two generations, a false-positive rate near its design, fixed memory, and keys
 * it cannot read are refused rather than misread.
 */
import t from 'tap'
import { hash } from 'node:crypto'
import { SeenFilter } from '../src/core/seen-filter.js'

const keyOf = (text: string): string => hash('sha256', text, 'base64')

t.test('a key is seen before from its second lookup on', async (t) => {
  const filter = new SeenFilter(1000)
  t.notOk(filter.seenBefore(keyOf('a')))
  t.ok(filter.seenBefore(keyOf('a')))
  t.ok(filter.seenBefore(keyOf('a')))
  t.notOk(filter.seenBefore(keyOf('b')))
  t.ok(filter.seenBefore(hash('sha256', 'b', 'base64url')), 'url-safe base64 of the same digest reads the same')
  filter.clear()
  t.notOk(filter.seenBefore(keyOf('a')), 'clear forgets everything')
})

t.test('no false negatives within a generation; remembered through the next; forgotten after two', async (t) => {
  const capacity = 500
  const filter = new SeenFilter(capacity)
  const keys = Array.from({ length: capacity }, (_, i) => keyOf(`gen1-${i}`))
  for (const k of keys) filter.seenBefore(k)
  t.ok(keys.every((k) => filter.seenBefore(k)), 'every key of the current generation is found (and finding adds nothing)')
  // A full generation of other keys: gen1 becomes the previous generation, and its keys are still found.
  for (let i = 0; i < capacity; i++) filter.seenBefore(keyOf(`gen2-${i}`))
  t.ok(filter.seenBefore(keys[0] as string), 'a key of the previous generation is found (and recorded again)')
  t.ok(filter.seenBefore(keys[0] as string), 'now in the current generation')
  // Two more generations without them: gen1's other keys are forgotten, but for false positives.
  for (let i = 0; i < 2 * capacity; i++) filter.seenBefore(keyOf(`gen3-${i}`))
  const remembered = keys.slice(1).filter((k) => filter.seenBefore(k)).length
  t.ok(remembered < capacity * 0.05, `forgotten (${remembered} of ${capacity - 1} found: false positives)`)
})

t.test('false positives stay near the design rate at capacity', async (t) => {
  const capacity = 50_000
  const filter = new SeenFilter(capacity)
  for (let i = 0; i < capacity; i++) filter.seenBefore(keyOf(`in-${i}`))
  let falsePositives = 0
  const probes = 20_000
  for (let i = 0; i < probes; i++) if (filter.seenBefore(keyOf(`out-${i}`))) falsePositives++
  // Designed for ~0.7 % when full; the probes themselves fill it further, so allow some margin.
  t.ok(falsePositives / probes < 0.02, `false-positive rate ${(100 * falsePositives / probes).toFixed(2)} %`)
  t.equal(filter.bytes, 2 * 2 ** 19 / 8, 'two bit arrays of 2^19 bits for 50,000 tokens (about 10 bits each)')
})

t.test('memory is fixed and bounded whatever the capacity; short keys are refused', async (t) => {
  t.equal(new SeenFilter(1).bytes, 2 * 4096 / 8, 'at least 4,096 bits per generation')
  t.equal(new SeenFilter(10_000_000).bytes, 2 * 2 ** 24 / 8, 'at most 2^24 bits (2 MiB) per generation')
  const filter = new SeenFilter(100)
  t.throws(() => filter.seenBefore('short'), RangeError)
  t.throws(() => filter.seenBefore(''), RangeError)
  // Characters outside base64 cannot index out of the arrays.
  t.doesNotThrow(() => filter.seenBefore('\u{1F600}'.repeat(20) + '\u0000'.repeat(10)))
})

t.test('keys of exactly 28 characters are read; 27 are refused', async (t) => {
  const filter = new SeenFilter(100)
  const key = keyOf('k')
  t.throws(() => filter.seenBefore(key.slice(0, 27)), RangeError, 'one character short of seven probes')
  t.notOk(filter.seenBefore(key.slice(0, 28)))
  t.ok(filter.seenBefore(key.slice(0, 28)))
})

t.test('a generation is exactly `capacity` insertions', async (t) => {
  // Each lookup records, so one lookup per filter: gen1 (capacity keys) stays the previous generation through
  // capacity insertions of gen2; the insertion after those starts a third generation and gen1 is gone.
  const capacity = 200
  let forgotten = 0
  let kept = 0
  const runs = 20
  for (let run = 0; run < runs; run++) {
    for (const extra of [0, 1]) {
      const filter = new SeenFilter(capacity)
      const first = keyOf(`r${run}-g1-0`)
      filter.seenBefore(first)
      for (let i = 1; i < capacity; i++) filter.seenBefore(keyOf(`r${run}-g1-${i}`))
      for (let i = 0; i < capacity + extra; i++) filter.seenBefore(keyOf(`r${run}-g2-${i}`))
      if (extra === 0) kept += filter.seenBefore(first) ? 1 : 0
      else forgotten += filter.seenBefore(first) ? 0 : 1
    }
  }
  t.equal(kept, runs, 'after its generation and capacity other insertions a key is still remembered')
  t.ok(forgotten >= runs - 2, `one insertion later it is forgotten (${forgotten} of ${runs}; the rest false positives)`)
})

t.test('clear forgets the previous generation too', async (t) => {
  const capacity = 100
  const filter = new SeenFilter(capacity)
  const keys = Array.from({ length: capacity }, (_, i) => keyOf(`old-${i}`))
  for (const k of keys) filter.seenBefore(k)
  filter.seenBefore(keyOf('new')) // keys → the previous generation
  t.ok(filter.seenBefore(keys[1] as string), 'still remembered before clear')
  filter.clear()
  const remembered = keys.slice(2).filter((k) => filter.seenBefore(k)).length
  t.equal(remembered, 0, 'nothing remembered after clear')
})
