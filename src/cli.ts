#!/usr/bin/env node
/**
 * The `oidc-verifier` command (package.json "bin"): check-config and verify, for operators. See
 * src/cli/main.ts, or run it with --help.
 */
import { main } from './cli/main.js'

async function readStdin (maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new Error(`standard input is longer than ${maxBytes} bytes; expected one token`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

let code: number
try {
  code = await main(process.argv.slice(2), {
    stdout: (text) => { process.stdout.write(text) },
    stderr: (text) => { process.stderr.write(text) },
    readStdin,
    env: process.env
  })
} catch (err) {
  process.stderr.write(`oidc-verifier: ${err instanceof Error ? err.message : String(err)}\n`)
  code = 1
}
// Exit now: an idle keep-alive connection to an identity provider must not keep the command waiting.
process.stdout.write('', () => process.exit(code))
