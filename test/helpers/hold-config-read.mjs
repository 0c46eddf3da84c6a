/**
 * Preload (node --import) for a test of a stop signal during start-up: the service's first open of the file
 * HOLD_CONFIG_PATH waits, blocking like a slow read, until a writer has opened and closed the FIFO HOLD_FIFO.
 * The service itself refuses a FIFO as its configuration file, so the wait is put in front of the open instead.
 * Test instrumentation only: nothing in src/ knows of it.
 */
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import process from 'node:process'

const path = process.env.HOLD_CONFIG_PATH
const fifo = process.env.HOLD_FIFO
const openSync = fs.openSync
let held = false
fs.openSync = function (file, ...rest) {
  if (!held && file === path) {
    held = true
    fs.readFileSync(fifo)
  }
  return openSync.call(this, file, ...rest)
}
// ES modules that import { openSync } from 'node:fs' see the replacement too.
syncBuiltinESMExports()
