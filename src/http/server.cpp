#include "http/server.h"

#include <sys/socket.h>

#include <stdexcept>

namespace era::http {

// httplib::Server keeps its listening socket protected; this subclass reaches it to set the backlog.
class Server::Impl : public httplib::Server {
 public:
  void set_backlog(int backlog) {
    socket_t s = svr_sock_;
    if (s != INVALID_SOCKET) ::listen(s, backlog);  // listen() again on a listening socket resizes its queue
  }
};

Server::Server(const Config& config) : config_(config), impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  const size_t threads = static_cast<size_t>(config.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(static_cast<size_t>(config.keep_alive_max_count));
  s.set_keep_alive_timeout(config.keep_alive_timeout);
  s.set_read_timeout(config.read_timeout, 0);
  s.set_write_timeout(config.read_timeout, 0);
  // Bodies are limited per route by the router (Ctx::body / stream_body); the library-wide cap is
  // only a backstop for bodies sent to routes that read none.
  s.set_payload_max_length(std::numeric_limits<size_t>::max());
}

Server::~Server() = default;

int Server::bind() {
  router_.install(*impl_);
  int port = config_.port;
  if (port == 0) {
    port = impl_->bind_to_any_port(config_.host);
    if (port < 0) throw std::runtime_error("cannot bind " + config_.host + " on any port");
  } else if (!impl_->bind_to_port(config_.host, port)) {
    throw std::runtime_error("cannot bind " + config_.host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
  }
  impl_->set_backlog(config_.listen_backlog);
  return port;
}

void Server::run() { impl_->listen_after_bind(); }
void Server::stop() { impl_->stop(); }
bool Server::is_running() const { return impl_->is_running(); }

}  // namespace era::http
