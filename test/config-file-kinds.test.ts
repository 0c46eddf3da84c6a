/**
 * The configuration file, and the key files it names, are read synchronously at start and on every reload
 * (SIGHUP), on the event loop of a running service. A path that is a FIFO blocked that read until a writer came:
 * check-config hung, and a reload stopped the running service from answering anything. A device such as
 * /dev/zero was read whole before its size was checked. Like the certificate files (src/small-file.ts), they
 * are opened without waiting and refused unless they are regular files.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'

const ISSUER = 'issuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\n'

t.test('a configuration file that is a FIFO is refused at once', async (t) => {
  const dir = tempDir(t, {})
  const path = join(dir, 'config.yaml')
  execFileSync('mkfifo', [path])
  const r = await runNode('src/cli.ts', ['check-config', '--config', path], { timeoutMs: 15_000 })
  t.equal(r.signal, null, 'not left waiting for a writer')
  t.equal(r.code, 2)
  t.match(r.stderr, `${path}: cannot read the file: it is not a regular file (a directory, FIFO, device or socket)`)
})

t.test('a decryption key file that is a FIFO is refused at once', async (t) => {
  const dir = tempDir(t, {})
  const fifo = join(dir, 'enc.pem')
  execFileSync('mkfifo', [fifo])
  const path = join(dir, 'config.yaml')
  writeFileSync(path, ISSUER + `    decryptionKeys: [${JSON.stringify(fifo)}]\n`)
  const r = await runNode('src/cli.ts', ['check-config', '--config', path], { timeoutMs: 15_000 })
  t.equal(r.signal, null, 'not left waiting for a writer')
  t.equal(r.code, 2)
  t.match(r.stderr, `issuers[0].decryptionKeys[0]: cannot read the key file ${JSON.stringify(fifo)}: it is not a regular file (a directory, FIFO, device or socket)`)
})

t.test('a device is not read whole', async (t) => {
  const r = await runNode('src/cli.ts', ['check-config', '--config', '/dev/null/x.yaml'], { timeoutMs: 15_000 })
  t.equal(r.code, 2, 'a path through a device is a problem')
  const dir = tempDir(t, {})
  const link = join(dir, 'config.yaml')
  execFileSync('ln', ['-s', '/dev/zero', link])
  const z = await runNode('src/cli.ts', ['check-config', '--config', link], { timeoutMs: 15_000 })
  t.equal(z.signal, null)
  t.equal(z.code, 2)
  t.match(z.stderr, 'cannot read the file: it is not a regular file')
})
