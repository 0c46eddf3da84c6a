/**
 * Reading the small files a configuration names for a listener (certificates, keys, CA bundles) synchronously,
 * at start and on every reload: without blocking the process on a path that is a FIFO or a device (open with
 * O_NONBLOCK, then refuse anything but a regular file), and without reading a huge file whole.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs'

/** Certificates, keys and CA bundles are kilobytes; anything larger at those paths is not one. */
export const MAX_SMALL_FILE_BYTES = 1024 * 1024

/** A file error with a code fileErrorReason words (src/config/operations.ts). */
function fileError (path: string, code: 'ENOTREGULAR' | 'ETOOLARGE', message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${path}: ${message}`), { code, path })
}

export function readSmallFileSync (path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) throw fileError(path, 'ENOTREGULAR', 'not a regular file')
    if (stat.size > MAX_SMALL_FILE_BYTES) throw fileError(path, 'ETOOLARGE', 'too large')
    const bytes = readFileSync(fd)
    if (bytes.length > MAX_SMALL_FILE_BYTES) throw fileError(path, 'ETOOLARGE', 'too large')
    return bytes
  } finally {
    closeSync(fd)
  }
}
