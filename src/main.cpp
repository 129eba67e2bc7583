// era-storage-proxy: the command line.
//   serve    run the proxy
//   version  print the version
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <pthread.h>
#include <thread>

#include <cxxopts.hpp>

#include "api/api.h"
#include "config/config.h"
#include "http/server.h"
#include "store/backend.h"
#include "util/log.h"

namespace {

using era::Config;
using era::ConfigError;

void usage() {
  std::cout << "usage: era-storage-proxy <command> [options]\n\n"
               "commands:\n"
               "  serve     run the storage proxy (see `era-storage-proxy serve --help`)\n"
               "  reindex   rebuild the resource registry's counters from the stores; report drift\n"
               "  version   print the version\n";
}

// Adds one flag per setting that has one, so the CLI cannot drift from the settings table.
void add_setting_flags(cxxopts::Options& options) {
  options.add_options()("c,config", "TOML configuration file (also ERA_PROXY_CONFIG)", cxxopts::value<std::string>());
  for (const auto& s : era::settings())
    if (!s.flag.empty())
      options.add_options()(s.flag, s.help + " [" + s.key + (s.env.empty() ? "" : ", " + s.env) + "]",
                            cxxopts::value<std::string>());
  options.add_options()("h,help", "show this help");
}

Config config_from(const cxxopts::ParseResult& r) {
  era::FlagValues flags;
  for (const auto& s : era::settings())
    if (!s.flag.empty() && r.count(s.flag)) flags[s.flag] = r[s.flag].as<std::string>();
  return era::load_config(r.count("config") ? r["config"].as<std::string>() : "", flags,
                          [](const char* name) { return std::getenv(name); });
}

int serve(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy serve", "Run the storage proxy.");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  era::log::Level level;
  era::log::parse_level(config.log_level, level);
  era::log::set_level(level);

  // Signals are taken by one thread with sigwait(); every other thread (created below) inherits the
  // blocked mask, so SIGINT/SIGTERM never interrupt a request in the middle.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto backend = era::open_backend(config);
  era::api::Services services{config, *backend};
  era::http::Server server(config);
  era::api::register_all(server.router(), services);
  const int port = server.bind();

  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGINT || sig == SIGTERM) {
      era::log::info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                     ": finishing in-flight requests");
      server.stop();
    }
  });
  signals.detach();

  std::printf("era-storage-proxy listening on http://%s:%d (backend %s, data dir %s)\n", config.host.c_str(), port,
              config.backend.c_str(), config.data_dir.c_str());
  std::fflush(stdout);
  server.run();
  backend->close();
  era::log::info("stopped cleanly");
  return 0;
}

int reindex(int argc, char** argv) {
  cxxopts::Options options("era-storage-proxy reindex",
                           "Rebuild the resource registry's counters from the stores and report any drift.");
  add_setting_flags(options);
  auto r = options.parse(argc, argv);
  if (r.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  Config config = config_from(r);
  era::log::set_level(era::log::Level::warn);
  auto backend = era::open_backend(config);
  auto report = backend->registry().reindex();
  backend->close();
  for (const auto& line : report.repairs) std::cout << "repaired " << line << "\n";
  std::cout << "reindex: " << report.repairs.size() << " counter(s) repaired" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  try {
    if (command == "serve") return serve(argc - 1, argv + 1);
    if (command == "reindex") return reindex(argc - 1, argv + 1);
    if (command == "version" || command == "--version") {
      std::cout << "era-storage-proxy " << ERA_VERSION << std::endl;
      return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
      usage();
      return 0;
    }
    std::cerr << "era-storage-proxy: unknown command '" << command << "'\n";
    usage();
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "era-storage-proxy: configuration error: " << e.what() << std::endl;
    return 2;
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << "era-storage-proxy: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "era-storage-proxy: " << e.what() << std::endl;
    return 1;
  }
}
