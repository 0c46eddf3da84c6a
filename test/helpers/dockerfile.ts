/**
 * The Dockerfile, read into stages for tests (dockerfile-ast parses; this keeps what tests check). The
 * container-check script (scripts/container-check.mjs) reads it the same way to repeat its steps.
 */
import { readFileSync } from 'node:fs'
import { Copy as CopyInstruction, DockerfileParser, Env, From, Healthcheck } from 'dockerfile-ast'

export interface Copy { from?: string, sources: string[], dest: string, line: number }

export interface Stage {
  name: string
  base: string
  workdir: string
  env: Record<string, string>
  user?: string
  expose: string[]
  /** Exec-form JSON arrays; undefined when not set in the stage (or not in exec form: see `shellForm`). */
  cmd?: string[]
  entrypoint?: string[]
  healthcheck?: { flags: Record<string, string>, test?: string[] }
  copies: Copy[]
  runs: string[]
  /** Instructions whose command is in shell form (a string), by keyword and line. */
  shellForm: string[]
  keywords: string[]
}

export const DOCKERFILE = new URL('../../Dockerfile', import.meta.url)

function jsonArray (text: string): string[] | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined
  } catch {
    return undefined
  }
}

export function readDockerfile (path: URL | string = DOCKERFILE): Stage[] {
  const stages: Stage[] = []
  const parsed = DockerfileParser.parse(readFileSync(path, 'utf8'))
  for (const instruction of parsed.getInstructions()) {
    const keyword = instruction.getKeyword()
    const line = instruction.getRange().start.line + 1
    const content = instruction.getArgumentsContent() ?? ''
    const args = instruction.getArguments().map((a) => a.getValue())
    if (instruction instanceof From) {
      stages.push({ name: instruction.getBuildStage() ?? String(stages.length), base: instruction.getImage() ?? '', workdir: '/', env: {}, expose: [], copies: [], runs: [], shellForm: [], keywords: [] })
      continue
    }
    const stage = stages[stages.length - 1]
    if (stage === undefined) throw new Error(`Dockerfile line ${line}: ${keyword} before FROM`)
    stage.keywords.push(keyword)
    const exec = (): string[] | undefined => {
      const value = jsonArray(content)
      if (value === undefined) stage.shellForm.push(`${keyword} (line ${line})`)
      return value
    }
    switch (keyword) {
      case 'WORKDIR': stage.workdir = args[0] ?? ''; break
      case 'ENV':
        for (const p of (instruction as Env).getProperties()) stage.env[p.getName()] = p.getValue() ?? ''
        break
      case 'USER': stage.user = args[0]; break
      case 'EXPOSE': stage.expose.push(...args); break
      case 'CMD': stage.cmd = exec(); break
      case 'ENTRYPOINT': stage.entrypoint = exec(); break
      case 'RUN': stage.runs.push(content.replace(/\\\r?\n/g, ' ')); break
      case 'COPY': {
        const from = (instruction as CopyInstruction).getFromFlag()?.getValue() ?? undefined
        stage.copies.push({ ...(from !== undefined ? { from } : {}), sources: args.slice(0, -1), dest: args[args.length - 1] ?? '', line })
        break
      }
      case 'HEALTHCHECK': {
        const flags = Object.fromEntries((instruction as Healthcheck).getFlags().map((f) => [f.getName(), f.getValue() ?? '']))
        const test = content.startsWith('CMD ') ? jsonArray(content.slice(4)) : undefined
        if (test === undefined && content !== 'NONE') stage.shellForm.push(`HEALTHCHECK (line ${line})`)
        stage.healthcheck = { flags, ...(test !== undefined ? { test } : {}) }
        break
      }
    }
  }
  return stages
}
