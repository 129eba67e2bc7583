#include "http/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "obs/metrics.h"

namespace era::http {

// httplib::Server keeps its listening socket protected; this subclass reaches it to set the backlog.
class Server::Impl : public httplib::Server {
 public:
  void set_backlog(int backlog) {
    socket_t s = svr_sock_;
    if (s != INVALID_SOCKET) ::listen(s, backlog);  // listen() again on a listening socket resizes its queue
  }
  // Serves on a listening socket made elsewhere (an AF_UNIX one); the server owns it from here.
  void adopt_listening_socket(int fd) { svr_sock_ = fd; }
};

namespace {

// The library's thread pool, counting connections for the metrics: the server enqueues one task per
// accepted connection, which serves it until it closes.
class CountingPool : public httplib::TaskQueue {
 public:
  explicit CountingPool(size_t threads) : pool_(threads) {}
  void enqueue(std::function<void()> fn) override {
    obs::metrics().connection_opened();
    pool_.enqueue([fn = std::move(fn)] {
      struct Closed {
        ~Closed() { obs::metrics().connection_closed(); }
      } closed;
      fn();
    });
  }
  void shutdown() override { pool_.shutdown(); }
  void on_idle() override { pool_.on_idle(); }

 private:
  httplib::ThreadPool pool_;
};

void configure(httplib::Server& s, const Config& config) {
  const size_t threads = static_cast<size_t>(config.threads);
  s.new_task_queue = [threads] { return new CountingPool(threads); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(static_cast<size_t>(config.keep_alive_max_count));
  s.set_keep_alive_timeout(config.keep_alive_timeout);
  s.set_read_timeout(config.read_timeout, 0);
  s.set_write_timeout(config.read_timeout, 0);
  // Bodies are limited per route by the router (Ctx::body / stream_body); the library-wide cap is
  // only a backstop for bodies sent to routes that read none.
  s.set_payload_max_length(std::numeric_limits<size_t>::max());
  // The library's default sets SO_REUSEPORT, with which a second proxy started on a busy port binds
  // too and the kernel splits connections between the two. SO_REUSEADDR alone still lets a restart
  // bind past connections in TIME_WAIT, while a live listener makes bind() fail.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
}

// A listening AF_UNIX socket at `path`. sun_path holds 108 bytes, so the socket is bound through
// /proc/self/fd/N of its directory: any path length works.
int unix_listener(const std::string& path, int backlog) {
  namespace fs = std::filesystem;
  fs::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const std::string name = p.filename().string();
  if (name.empty()) throw std::runtime_error("Unix socket path " + path + " names no file");
  std::error_code ec;
  fs::create_directories(dir, ec);
  int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw std::runtime_error("cannot open " + dir + ": " + std::strerror(errno));
  struct stat st;
  if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ::close(dfd);
      throw std::runtime_error(path + " exists and is not a socket");
    }
    ::unlinkat(dfd, name.c_str(), 0);  // left by an earlier run of the proxy
  }
  const std::string via = "/proc/self/fd/" + std::to_string(dfd) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (via.size() >= sizeof addr.sun_path) {
    ::close(dfd);
    throw std::runtime_error("Unix socket name too long: " + name);
  }
  std::memcpy(addr.sun_path, via.c_str(), via.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::fchmodat(dfd, name.c_str(), 0666, 0) != 0 || ::listen(fd, backlog) != 0)
    err = errno;
  ::close(dfd);
  if (err) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on " + path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

Server::Server(const Config& config) : config_(config), impl_(std::make_unique<Impl>()) {
  configure(*impl_, config);
}

Server::~Server() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Server::listen_unix(const std::string& path) {
  unix_ = std::make_unique<Impl>();
  configure(*unix_, config_);
  router_.install(*unix_, /*from_sandbox=*/true);
  unix_->adopt_listening_socket(unix_listener(path, config_.listen_backlog));
  // accept() blocks; waking up periodically lets stop() (which closes the socket) end the loop.
  unix_->set_idle_interval(0, 200000);
  unix_path_ = path;
}

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

void Server::run() {
  std::thread unix_thread;
  if (unix_) {
    unix_thread = std::thread([this] { unix_->listen_after_bind(); });
    // stop() only stops a server that is running: make sure it is before anything can call stop().
    for (int i = 0; i < 5000 && !unix_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->listen_after_bind();
  if (unix_thread.joinable()) {
    unix_->stop();
    unix_thread.join();
  }
}

void Server::stop() {
  impl_->stop();
  if (unix_) unix_->stop();
}
bool Server::is_running() const { return impl_->is_running(); }

}  // namespace era::http
