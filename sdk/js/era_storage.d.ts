// Types for era_storage.js, the storage SDK injected into every ERA session.

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
