/**
 * The OpenAPI 3.1 document, built from the route table (so every route is in it, with its method)
 * plus the shared schemas below. Also the small builders routes use to describe themselves.
 * @module
 */
import { HTTP_CODES } from './errors.js';
import { openApiPath, type ParamDoc, type RouteDef } from './route_table.js';

/** A `$ref` to a component schema. */
export const ref = (name: string): Record<string, unknown> => ({ $ref: `#/components/schemas/${name}` });

/** The same schema under `application/json` and `application/cbor`. */
export function jsonCbor(schema: string): Record<string, Record<string, unknown>> {
  return { 'application/json': { schema: ref(schema) }, 'application/cbor': { schema: ref(schema) } };
}

/** A `200` response with `schema` in JSON and CBOR. */
export function ok(schema: string, description: string): Record<string, { description: string; content: Record<string, Record<string, unknown>> }> {
  return { '200': { description, content: jsonCbor(schema) } };
}

/** Problem responses for the given statuses. */
export function errors(...statuses: number[]): Record<string, { description: string; content: Record<string, Record<string, unknown>> }> {
  const out: Record<string, { description: string; content: Record<string, Record<string, unknown>> }> = {};
  for (const s of statuses) {
    const codes = Object.entries(HTTP_CODES).filter(([, st]) => st === s).map(([c]) => c);
    out[String(s)] = { description: `Problem: ${codes.join(', ')}`, content: { 'application/problem+json': { schema: ref('Problem') } } };
  }
  return out;
}

/** A required request body: extra media types plus `schema` in JSON and CBOR. */
export function body(extra: Record<string, Record<string, unknown>>, schema: string): { required: boolean; content: Record<string, Record<string, unknown>> } {
  return { required: true, content: { ...jsonCbor(schema), ...extra } };
}

/** A query parameter. */
export function queryParam(name: string, description: string, schema: Record<string, unknown>, required = false): ParamDoc {
  return { name, in: 'query', required, description, schema };
}

/** The `{key}` path parameter. */
export const keyParam: ParamDoc = {
  name: 'key',
  in: 'path',
  required: true,
  description: 'The key, 1 B .. 64 KiB: percent-encoded (`%XX` escapes are raw bytes), or base64url with `keyEncoding=base64url`',
  schema: { type: 'string' },
};

/** The `keyEncoding` query parameter. */
/** `consistency` of plain reads (docs/http-api.md, Consistency). */
export const consistencyParam: ParamDoc = queryParam(
  'consistency',
  '`linearizable` (default): the answer reflects every write acknowledged before the request, whichever member answers (a ReadIndex round through the leader); `serializable`: this member\'s applied state, without asking the leader',
  { type: 'string', enum: ['linearizable', 'serializable'] },
);

export const keyEncodingParam: ParamDoc = queryParam('keyEncoding', 'How keys in the path and in `prefix`/`start`/`end` are written', {
  type: 'string',
  enum: ['percent', 'base64url'],
  default: 'percent',
});

/** Idempotency headers of writes. */
export const sessionParams: ParamDoc[] = [
  { name: 'ProofKV-Client-Id', in: 'header', description: 'Client session id, 1-64 printable ASCII characters', schema: { type: 'string', maxLength: 64 } },
  { name: 'ProofKV-Request-Seq', in: 'header', description: 'Request number within the session; a retry repeats it with the same request (a remembered pair sent with another request is 422 IDEMPOTENCY_KEY_REUSED)', schema: { type: 'integer', minimum: 0 } },
];

const bytes = { type: 'string', contentEncoding: 'base64url', description: 'Bytes: base64url (no padding) in JSON, a byte string in CBOR' };
const u53 = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
/** `timeIso` of write results and entries (docs/http-api.md § Commit times). */
const timeIso = { type: 'string', format: 'date-time', description: 'The commit time in ISO 8601 UTC with milliseconds; absent for a time past year 275760' };

/** A checkpoint message's fields (docs/proofs.md §5.1). */
const checkpointSchema = {
  type: 'object',
  required: ['index', 'seq', 'masterRoot'],
  properties: {
    index: u53,
    seq: u53,
    masterRoot: ref('Bytes'),
    prevCheckpointHash: ref('Bytes'),
    time: { ...u53, description: 'v2 checkpoints: when the checkpoint was taken, ms since the Unix epoch; never decreases along the log (docs/proofs.md §5.1)' },
    signerSetHash: ref('Bytes'),
  },
};

/** A signer set (docs/proofs.md §5.6). */
const signersSchema = {
  type: 'object',
  description: 'The signer set the checkpoint commits to (v2 checkpoints; docs/proofs.md §5.6)',
  required: ['quorum', 'members'],
  properties: {
    quorum: u53,
    members: { type: 'array', items: { type: 'object', required: ['id', 'publicKey'], properties: { id: u53, publicKey: ref('Bytes') } } },
  },
};

const SCHEMAS: Record<string, Record<string, unknown>> = {
  Bytes: bytes,
  Problem: {
    type: 'object',
    required: ['type', 'title', 'status', 'code'],
    properties: {
      type: { type: 'string', format: 'uri' },
      title: { type: 'string' },
      status: { type: 'integer' },
      code: { type: 'string', enum: Object.keys(HTTP_CODES) },
      detail: { type: 'string' },
      key: { ...bytes, description: 'CONDITION_FAILED: the key whose condition failed' },
      currentVersion: { ...u53, description: 'CONDITION_FAILED: the key\'s newest version (a tombstone\'s included; 0 when never written)' },
      absent: { type: 'boolean', description: 'CONDITION_FAILED: the key has no live version (never written, or deleted)' },
      index: { ...u53, description: 'CONDITION_FAILED: position of the failed operation in its batch (0 for a single write)' },
    },
  },
  WriteResult: {
    type: 'object',
    required: ['version', 'seq', 'time'],
    properties: {
      version: u53,
      seq: u53,
      time: { ...u53, description: 'Commit time, ms since the Unix epoch (docs/http-api.md § Commit times)' },
      timeIso,
    },
  },
  PutBody: {
    type: 'object',
    description: 'Exactly one of `value` and `valueUtf8`',
    properties: { value: ref('Bytes'), valueUtf8: { type: 'string' }, version: { ...u53, minimum: 1 } },
    additionalProperties: false,
  },
  AppendBody: {
    type: 'object',
    description: 'Exactly one of `value` and `valueUtf8`: the bytes to append',
    properties: { value: ref('Bytes'), valueUtf8: { type: 'string' } },
    additionalProperties: false,
  },
  BatchOp: {
    type: 'object',
    required: ['op', 'key'],
    description: '`append`: `value` is what is appended. `version`: puts only. `ifAbsent`: puts and appends. At most one of `ifVersion` and `ifAbsent`.',
    properties: {
      op: { type: 'string', enum: ['put', 'delete', 'append'] },
      key: ref('Bytes'),
      value: ref('Bytes'),
      valueUtf8: { type: 'string' },
      version: { ...u53, minimum: 1 },
      ifVersion: { ...u53, description: 'Apply only if the key\'s newest version (a tombstone\'s included; 0: never written) is this one' },
      ifAbsent: { type: 'boolean', description: 'Apply only if the key has no live version' },
    },
    additionalProperties: false,
  },
  BatchBody: { type: 'object', required: ['ops'], properties: { ops: { type: 'array', items: ref('BatchOp'), maxItems: 10000 } } },
  BatchResult: { type: 'object', required: ['results'], properties: { results: { type: 'array', items: ref('WriteResult') } } },
  Entry: {
    type: 'object',
    required: ['key', 'version', 'seq', 'time', 'kind', 'value'],
    properties: {
      key: ref('Bytes'),
      version: u53,
      seq: u53,
      time: { ...u53, description: 'Commit time, ms since the Unix epoch; committed in the entry leaf' },
      timeIso,
      kind: { type: 'string', enum: ['put', 'delete'] },
      value: ref('Bytes'),
      valueUtf8: { type: 'string', description: 'JSON only, when the value is valid UTF-8' },
    },
  },
  ScanPage: {
    type: 'object',
    required: ['items'],
    description:
      'Scans take no `since` / `until`: each item carries its newest version\'s `time`, and a client filters a page itself — on a proven page, by the proven times, which is complete for the page (docs/proofs.md §8.12, time windows)',
    properties: {
      items: { type: 'array', items: ref('Entry'), description: 'Each key\'s newest entry, in key order (tombstones only with proof and includeTombstones)' },
      cursor: { type: 'string', description: 'Present when there may be more; pass it as `cursor`. With proof: the proof\'s bound, the page\'s last key (base64url)' },
      start: { ...bytes, description: 'With proof: the range start the proof is for (inclusive)' },
      end: { ...bytes, description: 'With proof: the range end the proof is for (exclusive); absent: no upper end' },
      limit: { ...u53, description: 'With proof: the keys the page may cover, as the proof was built' },
      proof: { ...bytes, description: 'scanProofCodec (CBOR) encoding of the ScanProof: proof format 2 (compact), or 1 with proofFormat=1 (docs/proofs.md §8.10)' },
    },
  },
  GetProofResponse: {
    type: 'object',
    required: ['proof'],
    properties: { entry: ref('Entry'), proof: { ...bytes, description: 'getProofCodec (CBOR) encoding of the GetProof: proof format 2 (compact), or 1 with proofFormat=1 (docs/proofs.md §8.10)' }, cosignatures: { type: 'string', description: 'Witness cosignatures (C2SP tlog-cosignature note signature lines) the node holds for the head, when any (docs/witness.md)' } },
  },
  HistoryResponse: {
    type: 'object',
    required: ['entries', 'minVersion', 'maxVersion', 'limit'],
    properties: {
      entries: { type: 'array', items: ref('Entry'), description: 'Oldest first, tombstones included; with `since` / `until` only the versions committed in that window' },
      nextCursor: {
        type: 'string',
        description: 'Present when there may be more versions; absent once a version committed after `until` is reached. A verifying client follows the proof (`bound + 1`) instead',
      },
      minVersion: {
        ...u53,
        description:
          'The lowest version the page (and its proof) covers: the asked `min`, or with `since` the newest version committed before `since` (the boundary entry, proven but not listed in `entries`; docs/proofs.md §8.12, time windows)',
      },
      maxVersion: u53,
      limit: { ...u53, description: 'The page size the page (and its proof) was built for; at most the asked one' },
      proof: { ...bytes, description: 'historyProofCodec (CBOR) encoding of the HistoryProof: proof format 2 (compact), or 1 with proofFormat=1 (docs/proofs.md §8.10)' },
      cosignatures: { type: 'string', description: 'Witness cosignatures (C2SP tlog-cosignature note signature lines) the node holds for the head, when any (docs/witness.md)' },
    },
  },
  SignedCheckpoint: {
    type: 'object',
    required: ['checkpoint', 'head', 'signatures'],
    properties: {
      checkpoint: checkpointSchema,
      head: { type: 'object', required: ['size', 'root'], properties: { size: u53, root: ref('Bytes') } },
      signatures: {
        type: 'array',
        items: { type: 'object', required: ['publicKey', 'signature'], properties: { publicKey: ref('Bytes'), signature: ref('Bytes') } },
      },
      signers: signersSchema,
      cosignatures: { type: 'string', description: 'Witness cosignatures (C2SP tlog-cosignature note signature lines) the node holds for the head, when any (docs/witness.md)' },
    },
  },
  CheckpointWithInclusion: {
    allOf: [
      ref('SignedCheckpoint'),
      {
        type: 'object',
        required: ['inclusion'],
        properties: {
          inclusion: { type: 'array', items: ref('Bytes') },
          setChange: {
            description: "When this checkpoint changed the signer set: its own certificate (head of size index + 1, its signatures, the inclusion there, the new signers)",
            allOf: [ref('SignedCheckpoint'), { type: 'object', required: ['inclusion'], properties: { inclusion: { type: 'array', items: ref('Bytes') } } }],
          },
        },
      },
    ],
  },
  SetChanges: {
    type: 'object',
    required: ['from', 'size', 'changes'],
    description: 'One page of the checkpoints that changed the signer set (docs/proofs.md §5.6)',
    properties: {
      from: u53,
      size: u53,
      next: { ...u53, description: 'The `from` of the next page; absent on the last page' },
      changes: {
        type: 'array',
        items: {
          allOf: [
            ref('SignedCheckpoint'),
            {
              type: 'object',
              required: ['inclusion', 'signers', 'consistency'],
              description: "The changing checkpoint's own certificate (head of size index + 1, its signatures, the inclusion there, the new signers)",
              properties: {
                inclusion: { type: 'array', items: ref('Bytes') },
                consistency: { type: 'array', items: ref('Bytes'), description: 'RFC 9162 consistency proof from this head to the head of size `size`' },
                previous: {
                  type: 'object',
                  required: ['checkpoint', 'inclusion'],
                  description: 'Checkpoint index - 1 (absent for checkpoint 0), its inclusion in this head, and the set it commits to (v2)',
                  properties: {
                    checkpoint: checkpointSchema,
                    inclusion: { type: 'array', items: ref('Bytes') },
                    signers: signersSchema,
                  },
                },
              },
            },
          ],
        },
      },
    },
  },
  Consistency: { type: 'object', required: ['from', 'to', 'proof'], properties: { from: u53, to: u53, proof: { type: 'array', items: ref('Bytes') } } },
  Status: {
    type: 'object',
    required: ['role', 'nodeId', 'publicKey', 'lastSeq', 'tables', 'bytesOnDisk', 'version', 'limits'],
    properties: {
      role: { type: 'string', enum: ['leader', 'follower'] },
      nodeId: { type: 'string' },
      publicKey: ref('Bytes'),
      lastCheckpoint: ref('SignedCheckpoint'),
      lastSeq: u53,
      tables: u53,
      bytesOnDisk: u53,
      version: { type: 'string' },
      sync: { type: 'boolean', description: 'Whether a write is fdatasynced before it is acknowledged' },
      writes: {
        type: 'object',
        required: ['state'],
        description: 'ok (a write sent now is taken), no-leader (no leader known: writes refused as retryable until one is elected), paused (a write fault the node retries by itself) or stopped (needs a restart)',
        properties: {
          state: { type: 'string', enum: ['ok', 'no-leader', 'paused', 'stopped'] },
          fault: {
            type: 'object',
            properties: { component: { type: 'string' }, code: { type: 'string' }, lastCode: { type: 'string' }, since: { type: 'string' }, attempts: u53 },
          },
        },
      },
      limits: {
        type: 'object',
        properties: { maxKeySize: u53, maxValueSize: u53, maxValueBodyBytes: u53, maxBatchBodyBytes: u53, maxBatchOps: u53, maxPageBytes: u53 },
      },
    },
  },
  Health: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } },
  MemberBody: {
    type: 'object',
    required: ['id', 'clientUrl', 'peerUrl', 'publicKey'],
    properties: {
      id: { type: 'integer', minimum: 1, maximum: 0xffff_ffff },
      clientUrl: { type: 'string', format: 'uri' },
      peerUrl: { type: 'string', format: 'uri' },
      publicKey: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'The member\'s NODE_KEY public key, hex' },
    },
    additionalProperties: false,
  },
  Member: {
    type: 'object',
    required: ['id', 'clientUrl', 'peerUrl', 'publicKey', 'role', 'leader'],
    properties: {
      id: u53,
      clientUrl: { type: 'string' },
      peerUrl: { type: 'string' },
      publicKey: { type: 'string', description: 'hex' },
      role: { type: 'string', enum: ['voter', 'learner', 'registered'] },
      leader: { type: 'boolean' },
      match: { ...u53, description: 'The leader\'s replication progress of the member (answers of the leader only)' },
    },
  },
  Members: { type: 'object', required: ['leader', 'term', 'members'], properties: { leader: u53, term: u53, members: { type: 'array', items: ref('Member') } } },
  KeyRotations: {
    type: 'object',
    required: ['rotations'],
    properties: {
      rotations: {
        type: 'array',
        items: {
          type: 'object',
          required: ['logSize', 'oldPublicKey', 'newPublicKey', 'newSignature', 'time'],
          properties: {
            logSize: u53,
            oldPublicKey: ref('Bytes'),
            newPublicKey: ref('Bytes'),
            oldSignature: ref('Bytes'),
            newSignature: ref('Bytes'),
            time: { type: 'string' },
          },
        },
      },
    },
  },
  Ready: { type: 'object', required: ['ready'], properties: { ready: { type: 'boolean' }, reasons: { type: 'array', items: { type: 'string' } } } },
};

/** The OpenAPI 3.1 document of `routes`. */
export function buildOpenApi(routes: readonly RouteDef[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = openApiPath(r.path);
    const op: Record<string, unknown> = {
      operationId: r.name,
      summary: r.doc.summary,
      parameters: r.doc.parameters ?? [],
      responses: r.doc.responses,
      'x-proofkv-role': r.role,
    };
    if (r.doc.description) op.description = r.doc.description;
    if (r.doc.requestBody) op.requestBody = r.doc.requestBody;
    op.security = r.role === 'none' ? [] : [{ bearer: [] }];
    (paths[p] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'ProofKV HTTP API',
      version,
      description: 'A verifiable, versioned key-value database. See docs/http-api.md.',
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Roles: read < write < admin' } },
    },
  };
}
