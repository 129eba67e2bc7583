// The composition root of the stores: the backend a configuration names, opened with the options its
// stores take. Only here (and main) do Config and the stores meet: no store sees the application's
// Config, and config/ knows no store.
#pragma once

#include <memory>

#include "config/config.h"
#include "store/backend.h"

namespace era {

// Opens the backend `config.backend` names. Throws std::runtime_error on failure to open.
std::unique_ptr<Backend> open_backend(const Config& config);

}  // namespace era
