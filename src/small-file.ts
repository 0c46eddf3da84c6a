/**
 * Reading the small files a configuration names for a listener (certificates, keys, CA bundles): without
 * blocking on a path that is a FIFO or a device (opened with O_NONBLOCK, then anything but a regular file is
 * refused), and without reading a huge file whole. Synchronously at start and on a reload (readSmallFileSync);
 * the certificate watch reads off the event loop (src/http/tls-watch.ts) with the same checks. The errors carry
 * codes that fileErrorReason words (src/config/operations.ts).
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs'

/** Certificates, keys and CA bundles are kilobytes; anything larger at those paths is not one. */
export const MAX_SMALL_FILE_BYTES = 1024 * 1024

/** How a small file is opened: never waiting for a writer (a FIFO) or a device. */
export const SMALL_FILE_OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

function fileError (path: string, code: 'ENOTREGULAR' | 'ETOOLARGE', message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${path}: ${message}`), { code, path })
}

/** Throws unless the opened file is a regular file of at most MAX_SMALL_FILE_BYTES. */
export function checkSmallFile (path: string, stat: Pick<Stats, 'isFile' | 'size'>): void {
  if (!stat.isFile()) throw fileError(path, 'ENOTREGULAR', 'not a regular file')
  if (stat.size > MAX_SMALL_FILE_BYTES) throw fileError(path, 'ETOOLARGE', 'too large')
}

/** The bytes read, unless the file grew past MAX_SMALL_FILE_BYTES since its stat. */
export function checkSmallRead (path: string, bytes: Buffer): Buffer {
  if (bytes.length > MAX_SMALL_FILE_BYTES) throw fileError(path, 'ETOOLARGE', 'too large')
  return bytes
}

export function readSmallFileSync (path: string): Buffer {
  const fd = openSync(path, SMALL_FILE_OPEN_FLAGS)
  try {
    checkSmallFile(path, fstatSync(fd))
    return checkSmallRead(path, readFileSync(fd))
  } finally {
    closeSync(fd)
  }
}
