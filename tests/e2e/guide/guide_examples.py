#!/usr/bin/env python3
"""Every Python example of the storage guide (docs: the guide shipped to sandbox users), run against a
live proxy through the project's own SDK, each with the assertions the guide's text implies.

    ERA_STORAGE_URL=http://127.0.0.1:8787 PYTHONPATH=sdk/python python3 tests/e2e/guide/guide_examples.py

ERA_STORAGE_TOKEN is sent by the SDK (and here, for the resource endpoints). ERA_GUIDE_ADMIN_TOKEN, when
auth is on, is the credential for the guide's "Testing" section (creating a session is the admin's call).
ERA_GUIDE_RUN suffixes every namespace so that runs against one store never collide (random by default).
Prints one line per example and 'N passed, N failed' last; exits 1 on any failure. Standard library only.
"""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import datetime

import era_storage

RUN = os.environ.get("ERA_GUIDE_RUN") or uuid.uuid4().hex[:8]
URL = os.environ.get("ERA_STORAGE_URL", "http://127.0.0.1:8787").rstrip("/")
TOKEN = os.environ.get("ERA_STORAGE_TOKEN")
ADMIN = os.environ.get("ERA_GUIDE_ADMIN_TOKEN")


def ns(name):
    return f"{name}_{RUN}"


def http_json(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


EXAMPLES = []


def example(fn):
    EXAMPLES.append(fn)
    return fn


@example
def quick_start():
    era_storage.kv.set(ns("myapp"), "user:123", '{"theme": "dark"}')
    prefs = era_storage.kv.get(ns("myapp"), "user:123")
    assert prefs == '{"theme": "dark"}', prefs


@example
def kv_storage():
    app = ns("myapp")
    success = era_storage.kv.set(app, "config:api", json.dumps({"timeout": 30}))
    assert success is True, success
    config = json.loads(era_storage.kv.get(app, "config:api"))
    assert config["timeout"] == 30, config
    era_storage.kv.set(app, "other:x", "1")  # outside the prefix: not listed
    keys = era_storage.kv.list(app, prefix="config:", limit=100)
    assert len(keys) == 1 and keys[0]["name"] == "config:api", keys
    era_storage.kv.delete(app, "config:api")
    assert era_storage.kv.get(app, "config:api") is None
    assert era_storage.kv.list(app, prefix="config:", limit=100) == []


@example
def d1_database():
    app = ns("myapp")
    era_storage.d1.exec(app, """
        CREATE TABLE IF NOT EXISTS todos (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            completed BOOLEAN DEFAULT 0,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        )
    """)
    era_storage.d1.exec(app, "INSERT INTO todos (title) VALUES (?)", ["Write storage docs"])
    todos = era_storage.d1.query(app, "SELECT * FROM todos WHERE completed = ?", [0])
    assert [t["title"] for t in todos] == ["Write storage docs"], todos
    assert set(todos[0]) == {"id", "title", "completed", "created_at"}, todos[0]
    era_storage.d1.exec(app, "UPDATE todos SET completed = 1 WHERE id = ?", [todos[0]["id"]])
    assert era_storage.d1.query(app, "SELECT * FROM todos WHERE completed = ?", [0]) == []
    done = era_storage.d1.query(app, "SELECT completed FROM todos WHERE id = ?", [todos[0]["id"]])
    assert done == [{"completed": 1}], done


@example
def r2_storage():
    app = ns("myapp")
    image_data = bytes(range(256)) * 40 + b"\x00\xff"
    era_storage.r2.put(app, "avatars/user123.jpg", image_data,
                       metadata={"user_id": "123", "uploaded_by": "web_ui"})
    avatar_data = era_storage.r2.get(app, "avatars/user123.jpg")
    assert avatar_data == image_data, "R2 returned other bytes than were stored"
    era_storage.r2.put(app, "other/readme.txt", b"x")
    objects = era_storage.r2.list(app, prefix="avatars/", limit=50)
    assert [(o["key"], o["size"]) for o in objects] == [("avatars/user123.jpg", len(image_data))], objects
    era_storage.r2.delete(app, "avatars/user123.jpg")
    assert era_storage.r2.get(app, "avatars/user123.jpg") is None
    assert era_storage.r2.list(app, prefix="avatars/", limit=50) == []


@example
def namespacing():
    users, content, shared = ns("users_app"), ns("content_app"), ns("shared")
    era_storage.kv.set(users, "user:123", '{"name": "Alice"}')
    era_storage.d1.exec(users, "CREATE TABLE profiles (id INTEGER PRIMARY KEY, name TEXT)")
    era_storage.kv.set(content, "post:456", '{"title": "Hello"}')
    era_storage.d1.exec(content, "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT)")
    era_storage.kv.set(shared, "api_key", "sk-test")
    assert era_storage.kv.get(shared, "api_key") == "sk-test"
    assert era_storage.kv.get(users, "user:123") == '{"name": "Alice"}'
    # The same names in two namespaces are two things.
    assert era_storage.kv.get(content, "user:123") is None
    era_storage.d1.exec(content, "CREATE TABLE profiles (id INTEGER PRIMARY KEY, bio TEXT)")
    era_storage.d1.exec(content, "INSERT INTO profiles (bio) VALUES ('content side')")
    assert era_storage.d1.query(users, "SELECT count(*) AS n FROM profiles") == [{"n": 0}]


@example
def user_profiles():
    app = ns("myapp")

    class UserProfile:
        @staticmethod
        def save(user_id, profile_data):
            era_storage.kv.set(app, f"user:{user_id}:profile", json.dumps(profile_data))

        @staticmethod
        def load(user_id):
            data = era_storage.kv.get(app, f"user:{user_id}:profile")
            return json.loads(data) if data else None

        @staticmethod
        def update_avatar(user_id, image_data):
            era_storage.r2.put(app, f"avatars/{user_id}.jpg", image_data)

    UserProfile.save("123", {"name": "Alice", "email": "alice@example.com", "theme": "dark"})
    profile = UserProfile.load("123")
    assert profile["name"] == "Alice" and profile["theme"] == "dark", profile
    assert UserProfile.load("nobody") is None
    UserProfile.update_avatar("123", b"\x89PNG avatar")
    assert era_storage.r2.get(app, "avatars/123.jpg") == b"\x89PNG avatar"


@example
def application_database():
    app = ns("todo_app")
    era_storage.d1.exec(app, """
        CREATE TABLE IF NOT EXISTS tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            description TEXT,
            completed BOOLEAN DEFAULT 0,
            priority INTEGER DEFAULT 0,
            due_date TEXT,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        )
    """)

    def create_task(title, description, priority=0):
        era_storage.d1.exec(app, "INSERT INTO tasks (title, description, priority) VALUES (?, ?, ?)",
                            [title, description, priority])

    def get_pending_tasks():
        return era_storage.d1.query(
            app, "SELECT * FROM tasks WHERE completed = 0 ORDER BY priority DESC, created_at ASC")

    def complete_task(task_id):
        era_storage.d1.exec(app, "UPDATE tasks SET completed = 1 WHERE id = ?", [task_id])

    create_task("Write docs", "Document storage proxy features", priority=1)
    create_task("Add tests", "Test all storage operations", priority=2)
    tasks = get_pending_tasks()
    assert [(t["priority"], t["title"]) for t in tasks] == [(2, "Add tests"), (1, "Write docs")], tasks
    complete_task(tasks[0]["id"])
    assert [t["title"] for t in get_pending_tasks()] == ["Write docs"]


@example
def file_upload_and_management():
    app = ns("myapp")
    era_storage.d1.exec(app, "CREATE TABLE IF NOT EXISTS files "
                             "(filename TEXT, user_id TEXT, size INTEGER, uploaded_at TEXT)")

    def upload_file(filename, file_data, user_id):
        key = f"uploads/{user_id}/{filename}"
        era_storage.r2.put(app, key, file_data, metadata={"uploaded_by": user_id, "original_filename": filename})
        era_storage.d1.exec(app, "INSERT INTO files (filename, user_id, size, uploaded_at) VALUES (?, ?, ?, ?)",
                            [filename, user_id, len(file_data), datetime.now().isoformat()])
        return key

    def get_user_files(user_id):
        return era_storage.d1.query(app, "SELECT * FROM files WHERE user_id = ? ORDER BY uploaded_at DESC",
                                    [user_id])

    def download_file(user_id, filename):
        return era_storage.r2.get(app, f"uploads/{user_id}/{filename}")

    pdf = b"%PDF-1.4\n" + os.urandom(3000)
    key = upload_file("document.pdf", pdf, "user123")
    assert key == "uploads/user123/document.pdf"
    files = get_user_files("user123")
    assert len(files) == 1 and files[0]["size"] == len(pdf), files
    assert download_file("user123", "document.pdf") == pdf


@example
def caching_and_performance():
    cache = ns("cache")
    calls = []

    def get_data_with_cache(cache_key, fetch_function, ttl_seconds=300):
        cached = era_storage.kv.get(cache, cache_key)
        if cached:
            data = json.loads(cached)
            if time.time() - data["cached_at"] < ttl_seconds:
                return data["value"]
        value = fetch_function()
        era_storage.kv.set(cache, cache_key, json.dumps({"value": value, "cached_at": time.time()}))
        return value

    def fetch_expensive_data():
        calls.append(1)
        return {"result": "expensive data"}

    first = get_data_with_cache("expensive_query", fetch_expensive_data)
    second = get_data_with_cache("expensive_query", fetch_expensive_data)
    assert first == second == {"result": "expensive data"}
    assert len(calls) == 1, "the second call must be a cache hit"


@example
def multi_app_architecture():
    auth, analytics, content = ns("auth"), ns("analytics"), ns("content")
    era_storage.d1.exec(analytics, "CREATE TABLE IF NOT EXISTS events "
                                   "(type TEXT, user_id TEXT, metadata TEXT, timestamp TEXT)")

    def create_session(user_id, session_data):
        session_id = uuid.uuid4().hex
        era_storage.kv.set(auth, f"session:{session_id}", json.dumps({"user_id": user_id, "data": session_data}))
        return session_id

    def verify_session(session_id):
        data = era_storage.kv.get(auth, f"session:{session_id}")
        return json.loads(data) if data else None

    session_id = create_session("user123", {"ip": "1.2.3.4"})
    assert verify_session(session_id) == {"user_id": "user123", "data": {"ip": "1.2.3.4"}}
    assert verify_session("missing") is None
    era_storage.d1.exec(analytics, "INSERT INTO events (type, user_id, metadata, timestamp) VALUES (?, ?, ?, ?)",
                        ["login", "user123", json.dumps({"session": session_id}), datetime.now().isoformat()])
    events = era_storage.d1.query(
        analytics, "SELECT * FROM events WHERE user_id = ? ORDER BY timestamp DESC LIMIT 100", ["user123"])
    assert [e["type"] for e in events] == ["login"] and json.loads(events[0]["metadata"])["session"] == session_id
    image_data = b"logo" * 100
    era_storage.r2.put(content, "assets/logo.png", image_data)
    assert era_storage.r2.get(content, "assets/logo.png") == image_data


@example
def blog_system():
    blog = ns("blog")
    era_storage.d1.exec(blog, """
        CREATE TABLE IF NOT EXISTS posts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            slug TEXT UNIQUE NOT NULL,
            content TEXT NOT NULL,
            author_id TEXT NOT NULL,
            published_at TIMESTAMP,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        )
    """)
    era_storage.d1.exec(blog, """
        CREATE TABLE IF NOT EXISTS comments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            post_id INTEGER NOT NULL,
            author_id TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            FOREIGN KEY (post_id) REFERENCES posts(id)
        )
    """)

    def create_post(title, slug, content, author_id, cover_image=None):
        era_storage.d1.exec(blog, "INSERT INTO posts (title, slug, content, author_id, published_at) "
                                  "VALUES (?, ?, ?, ?, ?)",
                            [title, slug, content, author_id, datetime.now().isoformat()])
        if cover_image:
            era_storage.r2.put(blog, f"covers/{slug}.jpg", cover_image)
        return slug

    def get_post(slug):
        cached = era_storage.kv.get(blog, f"post:{slug}")
        if cached:
            return json.loads(cached)
        posts = era_storage.d1.query(blog, "SELECT * FROM posts WHERE slug = ?", [slug])
        if posts:
            era_storage.kv.set(blog, f"post:{slug}", json.dumps(posts[0]))
            return posts[0]
        return None

    def add_comment(post_slug, author_id, content):
        post = get_post(post_slug)
        if not post:
            return None
        era_storage.d1.exec(blog, "INSERT INTO comments (post_id, author_id, content) VALUES (?, ?, ?)",
                            [post["id"], author_id, content])
        era_storage.kv.delete(blog, f"post:{post_slug}")
        return True

    def get_post_with_comments(slug):
        post = get_post(slug)
        if not post:
            return None
        comments = era_storage.d1.query(blog, "SELECT * FROM comments WHERE post_id = ? ORDER BY created_at ASC",
                                        [post["id"]])
        objects = era_storage.r2.list(blog, prefix=f"covers/{slug}")
        return {"post": post, "comments": comments,
                "cover_url": f"/blog/covers/{slug}.jpg" if objects else None}

    create_post("Building with ERA Storage", "era-storage-guide", "Learn how to use ERA's storage proxy...",
                "alice", cover_image=b"\xff\xd8cover")
    assert add_comment("era-storage-guide", "bob", "Great tutorial!") is True
    assert add_comment("era-storage-guide", "charlie", "Very helpful, thanks!") is True
    assert add_comment("no-such-post", "dave", "?") is None
    post_data = get_post_with_comments("era-storage-guide")
    assert post_data["post"]["title"] == "Building with ERA Storage"
    assert [c["author_id"] for c in post_data["comments"]] == ["bob", "charlie"], post_data
    assert post_data["cover_url"] == "/blog/covers/era-storage-guide.jpg"
    # The cached copy (KV) and the row (D1) agree.
    assert json.loads(era_storage.kv.get(blog, "post:era-storage-guide"))["id"] == post_data["post"]["id"]


@example
def implement_caching_stats():
    cache, app = ns("cache"), ns("myapp")
    era_storage.d1.exec(app, "CREATE TABLE IF NOT EXISTS posts (user_id TEXT, views INTEGER)")
    era_storage.d1.exec(app, "INSERT INTO posts (user_id, views) VALUES ('u1', 10), ('u1', 5), ('u2', 7)")

    def get_user_stats(user_id):
        cached = era_storage.kv.get(cache, f"stats:{user_id}")
        if cached:
            return json.loads(cached)
        stats = era_storage.d1.query(
            app, "SELECT COUNT(*) as posts, SUM(views) as total_views FROM posts WHERE user_id = ?", [user_id])[0]
        era_storage.kv.set(cache, f"stats:{user_id}", json.dumps(stats))
        return stats

    assert get_user_stats("u1") == {"posts": 2, "total_views": 15}
    assert json.loads(era_storage.kv.get(cache, "stats:u1")) == {"posts": 2, "total_views": 15}


@example
def namespace_organization():
    data = "payload"
    for space, key in (("users", "profile:123"), ("content", "post:456"), ("cache", "query:789")):
        era_storage.kv.set(ns(space), key, data)
        assert era_storage.kv.get(ns(space), key) == data


@example
def error_handling():
    # The guide's pattern: a storage failure is an exception the caller can catch.
    era_storage.kv.set(ns("myapp"), "key", "value")
    try:
        era_storage.kv.set("not a valid namespace!", "key", "value")
    except Exception as e:  # noqa: BLE001 - the guide catches Exception
        assert str(e), "the error says what went wrong"
    else:
        raise AssertionError("an invalid namespace must raise")


@example
def resource_cleanup():
    sessions = ns("sessions")
    for i in range(5):
        era_storage.kv.set(sessions, f"session:{i}", json.dumps({"age_days": i * 10}))
    era_storage.kv.set(sessions, "other", "kept")

    def is_expired(session_data):
        return json.loads(session_data)["age_days"] > 30

    for key_info in era_storage.kv.list(sessions, prefix="session:"):
        key = key_info["name"]
        if is_expired(era_storage.kv.get(sessions, key)):
            era_storage.kv.delete(sessions, key)
    left = sorted(k["name"] for k in era_storage.kv.list(sessions))
    assert left == ["other", "session:0", "session:1", "session:2", "session:3"], left


@example
def resource_discovery():
    app = ns("discovery")
    era_storage.kv.set(app, "k", "v")
    era_storage.d1.exec(app, "CREATE TABLE IF NOT EXISTS t (x)")
    era_storage.r2.put(app, "o.bin", b"12345")
    resources = http_json("GET", "/api/resources/list", token=TOKEN)
    assert resources["total"] >= 3 and isinstance(resources["resources"], list), resources
    mine = http_json("GET", f"/api/resources/list?namespace={app}", token=TOKEN)
    got = sorted((r["type"], r["namespace"], r["key"]) for r in mine["resources"])
    assert got == [("d1", app, "t"), ("kv", app, "k"), ("r2", app, "o.bin")], got
    stats = http_json("GET", "/api/resources/stats", token=TOKEN)
    for kind in ("kv", "d1", "r2"):
        assert stats["by_type"][kind] >= 1, stats


@example
def environment_variables():
    assert os.getenv("ERA_STORAGE_URL"), "the SDK reads ERA_STORAGE_URL"


@example
def testing_section():
    # The guide's curl walk-through: create a session, run code that uses storage, check resources.
    # Creating a session is the admin's call: with auth on, the harness passes the admin credential.
    if TOKEN and not ADMIN:
        raise AssertionError("auth is on: ERA_GUIDE_ADMIN_TOKEN is needed for this example")
    session = http_json("POST", "/api/sessions", {"language": "python"}, token=ADMIN)
    code = ("import era_storage\n"
            f"era_storage.kv.set(\"test_{RUN}\", \"hello\", \"world\")\n"
            f"print(era_storage.kv.get(\"test_{RUN}\", \"hello\"))")
    out = http_json("POST", f"/api/sessions/{session['session_id']}/run", {"code": code}, token=ADMIN)
    assert out.get("stdout", "").strip() == "world", out
    stats = http_json("GET", "/api/resources/stats", token=ADMIN or TOKEN)
    assert stats["by_type"]["kv"] >= 1, stats


def main():
    passed = failed = 0
    for fn in EXAMPLES:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every example, then fail the run
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
