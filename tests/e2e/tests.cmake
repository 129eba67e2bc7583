# End-to-end suites: they start the real binary (ERA_PROXY_BIN) on a free port with a temporary
# data dir and talk to it over HTTP through the SDKs.
set(ERA_E2E_ENV
  "ERA_PROXY_BIN=$<TARGET_FILE:era-storage-proxy>"
  "ERA_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "PYTHONDONTWRITEBYTECODE=1")
add_test(NAME e2e_python
  COMMAND python3 -m unittest discover -s ${CMAKE_SOURCE_DIR}/tests/e2e -p "test_*.py" -t ${CMAKE_SOURCE_DIR}/tests/e2e)
add_test(NAME e2e_js
  COMMAND node --test ${CMAKE_SOURCE_DIR}/tests/e2e/js/)
add_test(NAME conformance_local
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/e2e/run_conformance.py --backend local)
# A 1 GiB R2 round trip with the proxy's peak RSS checked (< 64 MiB): about 30 s, run once per ctest.
add_test(NAME e2e_r2_1gib
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/e2e/r2_big.py)
set_tests_properties(e2e_python e2e_js conformance_local e2e_r2_1gib PROPERTIES ENVIRONMENT "${ERA_E2E_ENV}" TIMEOUT 900)
