/**
 * The PEM blocks of a file, as OpenSSL pairs them: each BEGIN line with the next END line of its label. A scan,
 * not a regular expression: `-----BEGIN X-----[\s\S]*?-----END \1-----` searches the rest of the file for an END
 * from every BEGIN it tries, so a file of BEGIN lines without an END (1 MiB is allowed, src/small-file.ts) takes
 * time quadratic in its size (some 20 s), in the process that serves, at a reload or a look at the files.
 */

export interface PemBlock {
  /** The label: CERTIFICATE, TRUSTED CERTIFICATE, PRIVATE KEY… */
  label: string
  /** The block, BEGIN and END lines included. */
  text: string
}

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g

/** Every block of `pem` whose label `accept` takes, in file order. Linear: each label's END is searched for once past a miss. */
export function pemBlocks (pem: string, accept: (label: string) => boolean = () => true): PemBlock[] {
  const blocks: PemBlock[] = []
  // Labels with no END after some position: no later BEGIN of that label can end either.
  const unended = new Set<string>()
  BEGIN.lastIndex = 0
  for (let begin = BEGIN.exec(pem); begin !== null; begin = BEGIN.exec(pem)) {
    const label = begin[1] as string
    if (!accept(label) || unended.has(label)) continue
    const endLine = `-----END ${label}-----`
    const end = pem.indexOf(endLine, BEGIN.lastIndex)
    if (end === -1) {
      unended.add(label)
      continue
    }
    blocks.push({ label, text: pem.slice(begin.index, end + endLine.length) })
    BEGIN.lastIndex = end + endLine.length
  }
  return blocks
}
