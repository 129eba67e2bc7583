// Server: cpp-httplib configured from Config, with the router installed and the listening socket
// bound. cpp-httplib 0.11's defaults do not suit an API server and are all set here on purpose:
// - TCP_NODELAY on: otherwise every response on a kept-alive connection waits ~40 ms (Nagle's
//   algorithm against the client's delayed ACK);
// - keep-alive for many requests per connection (its default closes after 5);
// - a thread pool sized for the connections we expect (a kept-alive connection holds a thread);
// - a listen backlog of our choosing (the library's is 5);
// - SO_REUSEADDR without SO_REUSEPORT, so a second proxy on a busy port fails to start.
#pragma once

#include <httplib.h>

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
  // Binds the socket; returns the bound port (useful with port 0). Throws on failure.
  int bind();
  // Also listens on a Unix socket at `path` (mode 0666: the sandboxed code, which runs as another
  // uid, connects to it; a stale socket there is replaced). cpp-httplib 0.11 cannot bind AF_UNIX
  // itself, so the socket is made here and handed to a second httplib::Server with the same router
  // and settings. Throws on failure. Call after bind(), before run().
  void listen_unix(const std::string& path);
  // Serves until stop(); returns when every in-flight request has finished.
  void run();
  // Stops accepting; safe from any thread (and from a signal-handling thread).
  void stop();
  bool is_running() const;

 private:
  class Impl;
  const Config& config_;
  Router router_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Impl> unix_;  // the Unix-socket listener, if any
  std::string unix_path_;
};

}  // namespace era::http
