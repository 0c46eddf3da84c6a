/**
 * Preload (node --import, or through NODE_OPTIONS) for a test that asks which modules a process loaded: records
 * the URL of every script V8 parses (the inspector's Debugger.scriptParsed) and, when the process exits, writes
 * those of the cluster primary, or of a process without workers, one per line, to the file RECORD_PARSED_SCRIPTS
 * names. Test instrumentation only.
 */
import cluster from 'node:cluster'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import process from 'node:process'

const out = process.env.RECORD_PARSED_SCRIPTS
if (out !== undefined && cluster.isPrimary) {
  const urls = []
  const session = new Session()
  session.connect()
  session.on('Debugger.scriptParsed', ({ params }) => { if (params.url !== '') urls.push(params.url) })
  session.post('Debugger.enable')
  process.on('exit', () => { writeFileSync(out, urls.join('\n') + '\n') })
}
