# End-to-end suites: they start the real binary (ERA_PROXY_BIN) on a free port with a temporary
# data dir and talk to it over HTTP through the SDKs. Every suite runs twice: against the local
# backend, and against the cloudflare backend pointed at Cloudflare's own emulator (Miniflare, started
# by with_emulator.py from wrangler/; ERA_TEST_BACKEND tells the harnesses which).
# ERA_TEST_SANITIZER tells the suites which sanitizer the proxy was built with ("asan", "tsan" or
# ""): a bound on the proxy's memory (peak RSS) or its speed must allow for the sanitizer's own cost.
if(ERA_SANITIZE)
  set(ERA_TEST_SANITIZER asan)
elseif(ERA_TSAN)
  set(ERA_TEST_SANITIZER tsan)
else()
  set(ERA_TEST_SANITIZER "")
endif()
set(ERA_E2E_ENV
  "ERA_PROXY_BIN=$<TARGET_FILE:era-storage-proxy>"
  "ERA_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "ERA_TEST_SANITIZER=${ERA_TEST_SANITIZER}"
  "PYTHONDONTWRITEBYTECODE=1")
set(ERA_WITH_EMULATOR python3 ${CMAKE_SOURCE_DIR}/tests/e2e/with_emulator.py)
set(ERA_PY_SUITES -m unittest discover -s ${CMAKE_SOURCE_DIR}/tests/e2e -p "test_*.py" -t ${CMAKE_SOURCE_DIR}/tests/e2e)
add_test(NAME e2e_python COMMAND python3 ${ERA_PY_SUITES})
add_test(NAME e2e_js COMMAND node --test ${CMAKE_SOURCE_DIR}/tests/e2e/js/)
add_test(NAME conformance_local
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/e2e/run_conformance.py --backend local)
add_test(NAME e2e_python_cloudflare COMMAND ${ERA_WITH_EMULATOR} python3 ${ERA_PY_SUITES})
add_test(NAME e2e_js_cloudflare COMMAND ${ERA_WITH_EMULATOR} node --test ${CMAKE_SOURCE_DIR}/tests/e2e/js/)
add_test(NAME conformance_cloudflare
  COMMAND ${ERA_WITH_EMULATOR} python3 ${CMAKE_SOURCE_DIR}/tests/e2e/run_conformance.py --backend cloudflare)
# The store contract suites (tests/unit/contract_stores.cpp) through the interfaces, cloudflare backend.
add_test(NAME contract_cloudflare COMMAND ${ERA_WITH_EMULATOR} $<TARGET_FILE:unit_tests> --no-intro=true -ts=contract)
set_tests_properties(contract_cloudflare PROPERTIES
  ENVIRONMENT "ERA_TEST_TMP=${CMAKE_BINARY_DIR}/tmp;ERA_SOURCE_DIR=${CMAKE_SOURCE_DIR}" TIMEOUT 600)
# The same scripts with tokens required, holding a session token of scope "*" (as a sandbox would).
add_test(NAME conformance_local_auth
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/e2e/run_conformance.py --backend local --auth)
# A 1 GiB R2 round trip with the proxy's peak RSS checked (< 64 MiB): about 30 s, run once per ctest.
add_test(NAME e2e_r2_1gib
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/e2e/r2_big.py)
# A sanitized proxy is several times slower (TSan most): its suites get twice the time.
if(ERA_TEST_SANITIZER)
  set(ERA_E2E_TIMEOUT 1800)
else()
  set(ERA_E2E_TIMEOUT 900)
endif()
set_tests_properties(e2e_python e2e_js conformance_local conformance_local_auth e2e_r2_1gib e2e_python_cloudflare
  e2e_js_cloudflare conformance_cloudflare PROPERTIES ENVIRONMENT "${ERA_E2E_ENV}" TIMEOUT ${ERA_E2E_TIMEOUT})

# The /explorer page in a real browser (playwright-core from tests/browser/, Debian's chromium), in both
# backends; screenshots of every screen go to build/browser/<backend>/.
set(ERA_BROWSER_TEST node --test ${CMAKE_SOURCE_DIR}/tests/browser/explorer.test.js)
add_test(NAME browser_local COMMAND ${ERA_BROWSER_TEST})
add_test(NAME browser_cloudflare COMMAND ${ERA_WITH_EMULATOR} ${ERA_BROWSER_TEST})
set_tests_properties(browser_local PROPERTIES TIMEOUT 600
  ENVIRONMENT "${ERA_E2E_ENV};ERA_BROWSER_OUT=${CMAKE_BINARY_DIR}/browser/local")
set_tests_properties(browser_cloudflare PROPERTIES TIMEOUT 600
  ENVIRONMENT "${ERA_E2E_ENV};ERA_BROWSER_OUT=${CMAKE_BINARY_DIR}/browser/cloudflare")

# The JS SDK's declarations (era_storage.d.ts) compile under strict TypeScript with the documented calls
# and refuse misuses, and match the module's real exports (tests/types/).
add_test(NAME sdk_types COMMAND sh -c "node_modules/.bin/tsc -p . && node check_exports.js"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/types)
set_tests_properties(sdk_types PROPERTIES TIMEOUT 300)

# The benchmark must keep working (timings are not checked: timings are not tests).
add_test(NAME bench_quick COMMAND ${CMAKE_SOURCE_DIR}/scripts/bench quick)
set_tests_properties(bench_quick PROPERTIES ENVIRONMENT "ERA_PROXY_BIN=$<TARGET_FILE:era-storage-proxy>" TIMEOUT 600)
