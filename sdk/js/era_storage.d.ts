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
