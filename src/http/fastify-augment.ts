import type { Verifier } from '../core/verifier.js'
import type { VerifierSlot } from '../verifier-slot.js'
import type { ErrorCode } from '../errors.js'
import type { OriginalSummary } from './original-request.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import type { RevocationStore } from '../revocation/store.js'
import type { CertificateWatch } from './tls-watch.js'
import type { WorkerReadinessReporter } from '../cluster-readiness.js'
import type { IssuerDifference } from '../core/near-issuer.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Verifier in use now; a configuration reload replaces it (read it once per request). */
    verifier: Verifier
    verifierSlot: VerifierSlot
    /** Set when the app starts to close: the listener stops, requests in flight finish, /readyz says not ready. */
    stopping: boolean
    /** Prometheus metrics of this app (src/metrics/metrics.ts); undefined when metrics.enabled is false. */
    metrics: ServiceMetrics | undefined
    /** The revocation store (src/revocation/store.ts); undefined when revocation.enabled is false. */
    revocations: RevocationStore | undefined
    /**
     * The ops listener's app (server.opsPort), set by buildOpsApp (src/ops-app.ts): a configuration reload
     * renews its certificates too (src/http/tls-reload.ts). Undefined on the ops app itself.
     */
    opsApp: FastifyInstance | undefined
    /**
     * Looks at the certificate files every server.certificateCheckSeconds (src/http/tls-watch.ts); undefined
     * without TLS, or with the check set to 0.
     */
    certificateWatch: CertificateWatch | undefined
    /**
     * With WORKERS=N, in a worker: how many workers of the host are ready (src/cluster-readiness.ts), set once it
     * listens; until then one that has no count (/readyz is 503). Undefined without WORKERS.
     */
    workersReadiness: Pick<WorkerReadinessReporter, 'workers'> | undefined
  }
  interface FastifyRequest {
    /** What the request log line reports: the configured issuer id and the error code, never token data. */
    outcome: { code?: ErrorCode, issuer?: string, algorithm?: string, offBySeconds?: number, nearIssuer?: string, issuerDifference?: IssuerDifference, parameter?: string, nearRoute?: string, nearRouteMethods?: string[], original?: OriginalSummary } | undefined
  }
}
