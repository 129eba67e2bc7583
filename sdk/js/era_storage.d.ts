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
