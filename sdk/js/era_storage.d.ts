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
