/**
 * Route schemas compiled once per process instead of once per Fastify instance. Fastify's default compilers
 * (ajv for what a request sends, fast-json-stringify for what a route answers) are made anew for every root
 * instance, so every buildApp compiled every route's schemas again: ~90 ms of the ~140 ms of CPU a build cost.
 * A service process builds one or two instances (the ops port's beside the main one), each worker of a cluster
 * its own; the test suite builds hundreds, and this was a sixth of its time. The schemas are module constants
 * (src/http/schemas.ts and the routes), so the compiled function is kept beside the schema object that produced
 * it and the next instance takes it as it is.
 *
 * What a compiled function depends on is the schema object, the instance's shared schemas (`addSchema`) and the
 * compiler's options: functions are kept per (shared schemas, options) and per schema object, in a WeakMap, so
 * a schema made anew per build (Fastify's lower-cased copy of a `headers` schema, an inline object) is compiled
 * by that build's own compiler and forgotten with it. Options or shared schemas that are not plain JSON (ajv
 * plugins, `onCreate`, a format given as a RegExp) cannot be compared, and such an instance gets Fastify's
 * compilers unchanged.
 */
import { AjvCompiler, type ValidatorFactory } from '@fastify/ajv-compiler'
import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler'

type RouteSchema = Parameters<ReturnType<ValidatorFactory>>[0]
type Validator = ReturnType<ReturnType<ValidatorFactory>>
type Serializer = ReturnType<ReturnType<SerializerFactory>>

/** Compiled functions by the identity of what compiled them: (shared schemas, options) → schema object → function. */
class CompiledFunctions<F> {
  private readonly byOrigin = new Map<string, WeakMap<object, F>>()

  /** The functions compiled under one (shared schemas, options) pair; undefined when those cannot be compared. */
  under (externalSchemas: unknown, options: unknown): WeakMap<object, F> | undefined {
    if (!isPlainJson(externalSchemas ?? {}) || !isPlainJson(options ?? {})) return undefined
    const key = `${JSON.stringify(externalSchemas ?? {})}\u0000${JSON.stringify(options ?? {})}`
    let compiled = this.byOrigin.get(key)
    if (compiled === undefined) {
      compiled = new WeakMap()
      this.byOrigin.set(key, compiled)
    }
    return compiled
  }
}

/**
 * Whether a value is JSON through and through (null, booleans, finite numbers, strings, arrays and plain objects),
 * so that JSON.stringify says all of it: a function, a RegExp (an ajv format given as one), a Map or a Date would
 * be written as nothing or as {}, and two options that differ there would look equal.
 */
function isPlainJson (value: unknown, depth = 0): boolean {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object' || depth > 16) return false
  if (Array.isArray(value)) return value.every((v) => isPlainJson(v, depth + 1))
  const prototype = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) return false
  return Object.values(value).every((v) => v === undefined || isPlainJson(v, depth + 1))
}

let compilations = 0

/** How many schemas this process has compiled for route validation and serialization (each once, when shared). */
export function schemaCompilations (): number {
  return compilations
}

/**
 * Wraps one of Fastify's compiler factories: a schema object compiled before under the same shared schemas and
 * options gets the function compiled then; otherwise the instance's own compiler (made at its first miss, as
 * Fastify would make it) compiles it and the function is kept.
 */
function compiledOnce<F> (
  functions: CompiledFunctions<F>,
  makeCompiler: (externalSchemas: unknown, options: unknown) => (route: { schema: object }) => F
) {
  return (externalSchemas: unknown, options: unknown) => {
    const compiled = functions.under(externalSchemas, options)
    let compiler: ((route: { schema: object }) => F) | undefined
    return (route: { schema: object }): F => {
      const kept = compiled?.get(route.schema)
      if (kept !== undefined) return kept
      compiler ??= makeCompiler(externalSchemas, options)
      const made = compiler(route)
      compilations++
      compiled?.set(route.schema, made)
      return made
    }
  }
}

const validators = new CompiledFunctions<Validator>()
const serializers = new CompiledFunctions<Serializer>()

/** The validator factory for Fastify's `schemaController.compilersFactory.buildValidator`. */
export const buildValidator = compiledOnce(validators, (externalSchemas, options) =>
  // A new pool per instance: its ajv is the instance's own, as with Fastify's default.
  AjvCompiler()(externalSchemas as Parameters<ValidatorFactory>[0], options as Parameters<ValidatorFactory>[1]) as (route: RouteSchema) => Validator
) as unknown as ValidatorFactory

/** The serializer factory for Fastify's `schemaController.compilersFactory.buildSerializer`. */
export const buildSerializer = compiledOnce(serializers, (externalSchemas, options) =>
  SerializerSelector()(externalSchemas, options as Parameters<SerializerFactory>[1]) as (route: { schema: object }) => Serializer
) as unknown as SerializerFactory

/** Fastify's `schemaController` option: every instance of the process shares the compiled route schemas. */
export const sharedSchemaCompilers = { compilersFactory: { buildValidator, buildSerializer } }
