// Server: the proxy's HTTP/1.1 server, an event loop on Boost.Asio with Boost.Beast's parser (all
// of it inside server.cpp, behind this pimpl: api/*.cpp never compile Boost).
//
// - A few I/O threads (server.io_threads) own every connection: accepting, reading request heads,
//   keep-alive waits, refusals. An idle kept-alive connection costs its buffer and no thread.
// - A GET or HEAD without a body that the router can answer from memory (Router::try_inline: a cached
//   KV read) is answered on the loop itself, no worker involved.
// - Every other request whose head is complete runs on a worker (server.workers) with a bounded queue
//   (server.queue); when both are full the request is answered 503 + Retry-After at once. A small
//   body (<= 64 KiB by Content-Length) is read on the loop first; a larger one the worker reads as
//   the handler asks for it (Ctx::stream_body). The worker writes the response while the socket
//   takes it; a peer that stops reading parks the connection on the loop (no worker, no growing
//   buffer). After the response the worker starts the connection's next read itself.
// - Every connection lives on one loop (one io_context per I/O thread); timeouts are lazy (a
//   timer is re-armed only when a deadline comes sooner). Expect other than 100-continue: 417.
// - Hostile clients: the head must arrive within server.head_timeout_ms and fit server.max_head_bytes
//   and server.max_headers; a body may pause at most server.read_timeout; connections are capped in
//   total (server.max_connections) and per peer address (server.max_connections_per_peer, not on
//   the Unix socket). `Expect: 100-continue` is answered only when the handler reads the body.
// - The Unix socket the sandboxes use (listen_unix) is served by the same loop.
// docs/operations.md ("The HTTP server") says why this replaced cpp-httplib.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "http/router.h"

namespace era::http {

class Server {
 public:
  explicit Server(const Config& config);
  ~Server();

  Router& router() { return router_; }
  // Binds the TCP socket (SO_REUSEADDR, never SO_REUSEPORT: a second proxy on a busy port fails to
  // start); returns the bound port (useful with port 0). Throws on failure or when a route has no
  // access declaration.
  int bind();
  // Also listens on a Unix socket at `path` (mode 0666: the sandboxed code, which runs as another
  // uid, connects to it; a stale socket there is replaced). Throws on failure. Call after bind(),
  // before run().
  void listen_unix(const std::string& path);
  // Serves until stop(); returns when every in-flight request has finished and every connection is
  // closed.
  void run();
  // Graceful drain, safe from any thread, before or during run(): stops accepting, closes idle
  // connections at once, lets in-flight requests finish (their responses say Connection: close).
  void stop();

  class Impl;  // server.cpp's own

 private:
  Router router_;
  std::unique_ptr<Impl> impl_;
  std::string unix_path_;
};

}  // namespace era::http
