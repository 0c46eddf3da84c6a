/**
 * Unknown-field check for Kubernetes manifests. kubernetes-models' validate() follows the API's OpenAPI
 * schemas, which allow unknown members, so a typo such as `readOnlyRootFileSystem` or `readinessprobe`
 * passes it, while the API server (strict field validation) rejects it — or, with a lenient client, silently
 * drops a security setting. This walks each manifest along the TypeScript interfaces that kubernetes-models
 * ships and reports every member its type does not declare.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import ts from 'typescript'

export interface ModelType {
  /** Module specifier, e.g. `kubernetes-models/apps/v1/Deployment`. */
  module: string
  /** Exported interface, e.g. `IDeployment`. */
  name: string
}

export class FieldChecker {
  private readonly checker: ts.TypeChecker
  private readonly types = new Map<string, ts.Type>()

  constructor (models: Readonly<Record<string, ModelType>>) {
    // A virtual module next to this file (so node_modules resolves) that re-exports each interface.
    const require = createRequire(import.meta.url)
    const root = dirname(dirname(require.resolve('kubernetes-models/package.json')))
    const file = join(root, '..', '__k8s_field_check__.ts')
    const entries = Object.entries(models)
    const source = entries.map(([kind, m], i) => `import type { ${m.name} as T${i} } from '${m.module}'\nexport type ${kind} = T${i}`).join('\n')
    const options: ts.CompilerOptions = { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, strict: true, noEmit: true, skipLibCheck: true, types: [] }
    const host = ts.createCompilerHost(options)
    const getSourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (name, languageVersion, ...rest) => name === file
      ? ts.createSourceFile(name, source, languageVersion)
      : getSourceFile(name, languageVersion, ...rest)
    const fileExists = host.fileExists.bind(host)
    host.fileExists = (name) => name === file || fileExists(name)
    const program = ts.createProgram([file], options, host)
    this.checker = program.getTypeChecker()
    const moduleSymbol = this.checker.getSymbolAtLocation(program.getSourceFile(file)!)!
    for (const symbol of this.checker.getExportsOfModule(moduleSymbol)) {
      this.types.set(symbol.getName(), this.checker.getDeclaredTypeOfSymbol(symbol))
    }
    for (const [kind] of entries) {
      const type = this.types.get(kind)
      if (type === undefined || (type.flags & ts.TypeFlags.Any) !== 0) throw new Error(`cannot resolve the type of ${kind}`)
    }
  }

  /** Every member of `value` that the kind's type does not declare, as a path such as spec.template.spec.x. */
  unknownFields (kind: string, value: unknown): string[] {
    const type = this.types.get(kind)
    if (type === undefined) throw new Error(`no model type for kind ${kind}`)
    const problems: string[] = []
    this.walk(value, type, '', problems)
    return problems
  }

  private walk (value: unknown, declared: ts.Type, path: string, problems: string[]): void {
    const type = this.checker.getNonNullableType(declared)
    if ((type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0) return
    const members = type.isUnion() ? type.types : [type]
    if (Array.isArray(value)) {
      const array = members.find((t) => this.checker.isArrayType(t))
      if (array === undefined) return
      const element = this.checker.getTypeArguments(array as ts.TypeReference)[0]
      if (element !== undefined) value.forEach((item, i) => this.walk(item, element, `${path}[${i}]`, problems))
      return
    }
    if (value === null || typeof value !== 'object') return
    const objects = members.filter((t) => (t.flags & ts.TypeFlags.Object) !== 0 && !this.checker.isArrayType(t))
    if (objects.length === 0) return
    for (const [key, child] of Object.entries(value)) {
      const at = path === '' ? key : `${path}.${key}`
      let next: ts.Type | undefined
      for (const object of objects) {
        const property = object.getProperty(key)
        if (property !== undefined) { next = this.checker.getTypeOfSymbol(property); break }
        const index = this.checker.getIndexInfoOfType(object, ts.IndexKind.String)
        if (index !== undefined) { next = index.type; break }
      }
      if (next === undefined) problems.push(`${at}: unknown field`)
      else this.walk(child, next, at, problems)
    }
  }
}
