// Types for era_storage.js, the storage SDK injected into every ERA session.
/// <reference types="node" />

export class StorageError extends Error {
  /** HTTP status from the proxy; 0 when it could not be reached. */
  status: number;
  /** Stable error code, e.g. "invalid_namespace", "key_not_found". */
  code: string;
}

export interface KVKey {
  name: string;
  metadata: Record<string, unknown> | null;
  /** Unix seconds, present when the key expires. */
  expiration?: number;
}

export interface KVListPage {
  keys: KVKey[];
  list_complete: boolean;
  cursor: string | null;
}

export interface KVSetOptions {
  /** Absolute expiry, unix seconds (at least 60 s ahead). */
  expiration?: number;
  /** Seconds from now, at least 60. */
  expirationTtl?: number;
}

export class KVStorage {
  static set(namespace: string, key: string, value: string, metadata?: Record<string, unknown> | null,
    options?: KVSetOptions): Promise<true>;
  static get(namespace: string, key: string): Promise<string | null>;
  static getWithMetadata(namespace: string, key: string):
    Promise<{ value: string; metadata: Record<string, unknown> | null; expiration?: number } | null>;
  static delete(namespace: string, key: string): Promise<true>;
  static list(namespace: string, prefix?: string, limit?: number, cursor?: string | null): Promise<KVKey[]>;
  static listPage(namespace: string, prefix?: string, limit?: number, cursor?: string | null): Promise<KVListPage>;
  static iterate(namespace: string, prefix?: string, pageSize?: number): AsyncGenerator<KVKey>;
}

export interface R2Object {
  /** The key, without the namespace. */
  key: string;
  size: number;
  /** Hex MD5 of the bytes, unquoted. */
  etag: string;
  /** ISO 8601 time of the upload, with milliseconds. */
  uploaded: string | null;
  customMetadata: Record<string, string>;
  httpMetadata: { contentType: string | null };
}

export interface R2ListPage {
  objects: R2Object[];
  truncated: boolean;
  cursor: string | null;
  delimitedPrefixes: string[];
}

/** R2's range shapes: bytes from offset (length of them, or to the end), or the last suffix bytes. */
export type R2Range = { offset: number; length?: number } | { suffix: number };

export interface R2PutOptions {
  /** Stored as the object's httpMetadata.contentType; default application/octet-stream. */
  contentType?: string;
  /** Compare-and-swap: the current object's etag must be this ("*": any object must exist), else 412. */
  ifMatch?: string;
  /** The current object's etag must not be this ("*": create only), else 412. */
  ifNoneMatch?: string;
  /** The byte length of a stream body, when known (sent as Content-Length instead of chunked). */
  size?: number;
}

export type R2Body = Buffer | string | Uint8Array | ArrayBuffer | NodeJS.ReadableStream;

export class R2Storage {
  static put(namespace: string, key: string, data: R2Body, metadata?: Record<string, string> | null,
    options?: R2PutOptions): Promise<R2Object>;
  /** The bytes, or null when the object does not exist. */
  static get(namespace: string, key: string, options?: { range?: R2Range }): Promise<Buffer | null>;
  /** The body as a stream (for objects too large to hold), or null when the object does not exist. */
  static getStream(namespace: string, key: string, options?: { range?: R2Range }):
    Promise<{ stream: NodeJS.ReadableStream; info: R2Object; length: number } | null>;
  static head(namespace: string, key: string): Promise<R2Object | null>;
  static delete(namespace: string, key: string): Promise<true>;
  static list(namespace: string, prefix?: string, limit?: number, cursor?: string | null,
    delimiter?: string | null): Promise<R2Object[]>;
  static listPage(namespace: string, prefix?: string, limit?: number, cursor?: string | null,
    delimiter?: string | null): Promise<R2ListPage>;
  static iterate(namespace: string, prefix?: string, pageSize?: number): AsyncGenerator<R2Object>;
}

/** A D1 value: INTEGER and REAL as number, TEXT as string, BLOB as an array of byte values, NULL as null. */
export type D1Value = null | number | string | number[];
/** A bound parameter: booleans bind as 1/0; Buffers, typed arrays and ArrayBuffers bind as BLOBs. */
export type D1Param = null | boolean | number | bigint | string | ArrayBuffer | ArrayBufferView | number[];

export interface D1Meta {
  changes: number;
  last_row_id: number;
  /** Milliseconds inside the database. */
  duration: number;
  rows_read: number;
  rows_written: number;
  changed_db: boolean;
  size_after: number;
  served_by: string;
}

export interface D1Result<Row = Record<string, D1Value>> {
  results: Row[];
  meta: D1Meta;
}

export type D1Statement = string | [string, D1Param[]?] | { sql: string; params?: D1Param[] };

export class D1Storage {
  static query<Row = Record<string, D1Value>>(namespace: string, sql: string, params?: D1Param[]): Promise<Row[]>;
  static queryWithMeta<Row = Record<string, D1Value>>(namespace: string, sql: string, params?: D1Param[]):
    Promise<D1Result<Row>>;
  static exec(namespace: string, sql: string, params?: D1Param[]): Promise<D1Meta & { count: number }>;
  static batch(namespace: string, statements: D1Statement[]): Promise<D1Result[]>;
}

export interface Resource {
  type: 'kv' | 'd1' | 'r2';
  namespace: string;
  /** The user's own name: the KV key, the D1 table, the R2 key. */
  key: string;
  size: number | null;
  metadata: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
}

export interface ResourceFilters {
  type?: 'kv' | 'd1' | 'r2';
  namespace?: string;
  key_prefix?: string;
  limit?: number;
  offset?: number;
  cursor?: string | null;
}

export interface ResourcePage {
  resources: Resource[];
  total: number;
  offset: number;
  limit: number;
  has_more: boolean;
  cursor: string | null;
}

export interface ResourceStats {
  total: number;
  total_size: number;
  by_type: { kv: number; d1: number; r2: number };
  by_namespace: Record<string, number>;
}

export class ResourcesAPI {
  static list(filters?: ResourceFilters): Promise<ResourcePage>;
  static iterate(filters?: ResourceFilters, pageSize?: number): AsyncGenerator<Resource>;
  static stats(namespace?: string): Promise<ResourceStats>;
}
