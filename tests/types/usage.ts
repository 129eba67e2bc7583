// Compiled (not run) by `tsc -p tests/types`: every call the SDK documents, typed through
// sdk/js/era_storage.d.ts under `strict`, plus misuses that must NOT compile (@ts-expect-error fails the
// build when the line below it compiles, so the declarations cannot silently decay into `any`).
// check_exports.js then compares these declarations with the JavaScript module itself.
import {
  D1Meta, D1Result, D1Storage, D1Value, KVKey, KVStorage, R2Object, R2Storage, Resource, ResourcePage,
  ResourcesAPI, ResourceStats, StorageError,
} from '../../sdk/js/era_storage';

async function kv(): Promise<void> {
  const ok: true = await KVStorage.set('myapp', 'user:123', '{"theme": "dark"}');
  await KVStorage.set('myapp', 'k', 'v', { a: 1 }, { expirationTtl: 120 });
  await KVStorage.set('myapp', 'k', 'v', null, { expiration: 2000000000 });
  const value: string | null = await KVStorage.get('myapp', 'user:123');
  const withMeta = await KVStorage.getWithMetadata('myapp', 'k');
  if (withMeta) {
    const v: string = withMeta.value;
    const m: Record<string, unknown> | null = withMeta.metadata;
    void v, m;
  }
  const keys: KVKey[] = await KVStorage.list('myapp', 'config:', 100);
  const names: string[] = keys.map((k) => k.name);
  const page = await KVStorage.listPage('myapp', '', 10, null);
  const done: boolean = page.list_complete;
  for await (const key of KVStorage.iterate('myapp', 'p:', 100)) {
    const n: string = key.name;
    void n;
  }
  await KVStorage.delete('myapp', 'k');
  // @ts-expect-error values are strings
  await KVStorage.set('myapp', 'k', 42);
  // @ts-expect-error the namespace comes first and is required
  await KVStorage.get('k');
  void ok, value, names, done;
}

async function d1(): Promise<void> {
  const rows: Record<string, D1Value>[] = await D1Storage.query('myapp', 'SELECT * FROM todos WHERE id = ?', [1]);
  type Todo = { id: number; title: string };
  const todos: Todo[] = await D1Storage.query<Todo>('myapp', 'SELECT id, title FROM todos');
  const meta: D1Meta & { count: number } = await D1Storage.exec('myapp', 'INSERT INTO t VALUES (?, ?, ?)',
                                                                ['x', 1n, Buffer.from('b')]);
  const withMeta: D1Result = await D1Storage.queryWithMeta('myapp', 'SELECT 1');
  const results: D1Result[] = await D1Storage.batch('myapp', [
    'SELECT 1', ['SELECT ?', [true]], { sql: 'SELECT ?', params: [null] },
  ]);
  // @ts-expect-error params are an array
  await D1Storage.query('myapp', 'SELECT ?', 1);
  // @ts-expect-error objects are not bindable
  await D1Storage.exec('myapp', 'SELECT ?', [{ a: 1 }]);
  void rows, todos, meta.count, meta.last_row_id, withMeta.meta.served_by, results;
}

async function r2(): Promise<void> {
  const put: R2Object = await R2Storage.put('myapp', 'avatars/user123.jpg', Buffer.from('x'),
                                            { user_id: '123' }, { contentType: 'image/jpeg', ifNoneMatch: '*' });
  const bytes: Buffer | null = await R2Storage.get('myapp', 'avatars/user123.jpg', { range: { offset: 0, length: 2 } });
  const tail: Buffer | null = await R2Storage.get('myapp', 'k', { range: { suffix: 4 } });
  const streamed = await R2Storage.getStream('myapp', 'k');
  if (streamed) streamed.stream.pipe(process.stdout);
  const head: R2Object | null = await R2Storage.head('myapp', 'k');
  const objects: R2Object[] = await R2Storage.list('myapp', 'avatars/', 50);
  const page = await R2Storage.listPage('myapp', '', 10, null, '/');
  const prefixes: string[] = page.delimitedPrefixes;
  for await (const o of R2Storage.iterate('myapp')) {
    const size: number = o.size;
    void size;
  }
  await R2Storage.delete('myapp', 'k');
  // @ts-expect-error metadata values are strings
  await R2Storage.put('myapp', 'k', 'data', { n: 1 });
  void put.etag, bytes, tail, head, objects, prefixes;
}

async function resources(): Promise<void> {
  const page: ResourcePage = await ResourcesAPI.list({ namespace: 'myapp', type: 'kv', limit: 10 });
  const first: Resource | undefined = page.resources[0];
  const stats: ResourceStats = await ResourcesAPI.stats('myapp');
  const kvCount: number = stats.by_type.kv;
  for await (const r of ResourcesAPI.iterate({ type: 'r2' }, 100)) {
    const t: 'kv' | 'd1' | 'r2' = r.type;
    void t;
  }
  // @ts-expect-error no such resource type
  await ResourcesAPI.list({ type: 'queue' });
  void first, kvCount;
}

function errors(e: unknown): string {
  if (e instanceof StorageError) {
    const status: number = e.status;
    const code: string = e.code;
    return `${status} ${code} ${e.message}`;
  }
  return String(e);
}

void kv, d1, r2, resources, errors;
