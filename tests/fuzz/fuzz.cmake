# libFuzzer targets (ERA_FUZZ=ON): one executable per target, fuzz_<name>, from tests/fuzz/<name>.cpp.
# scripts/fuzz builds and runs them; tests/fuzz/corpus/<name>/ holds each one's seeds and
# tests/fuzz/regressions/<name>/ the inputs that once failed (replayed by every run).
#
# The targets link a library of only the sources they reach (era_fuzz_core), not the whole proxy:
# the fuzz tree is built by scripts/test on a busy machine, and every object costs ASan+UBSan+coverage.
set(ERA_FUZZ_SOURCES
  src/ns/sql_guard.cpp src/ns/sql_rewrite.cpp src/ns/sql_tokenizer.cpp src/ns/names.cpp src/ns/object_registry.cpp
  src/store/sql/guarded_sql.cpp
  src/auth/token.cpp src/auth/principal.cpp
  src/config/config.cpp src/store/cloudflare/sigv4.cpp
  src/store/cloudflare/xml.cpp
  src/http/router.cpp src/http/message.cpp src/http/json_limits.cpp src/http/headers.cpp src/api/bodies.cpp
  src/util/encoding.cpp src/util/log.cpp src/util/crypto.cpp src/util/time.cpp)
list(TRANSFORM ERA_FUZZ_SOURCES PREPEND ${CMAKE_SOURCE_DIR}/)
add_library(era_fuzz_core STATIC ${ERA_FUZZ_SOURCES})
target_include_directories(era_fuzz_core PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_compile_options(era_fuzz_core PRIVATE ${ERA_WARNINGS})
target_compile_definitions(era_fuzz_core PUBLIC ERA_VERSION="${PROJECT_VERSION}")
target_link_libraries(era_fuzz_core PUBLIC tomlplusplus::tomlplusplus OpenSSL::SSL OpenSSL::Crypto SQLite::SQLite3
  nlohmann_json::nlohmann_json Threads::Threads ${CMAKE_DL_LIBS})

# The S3 XML reader is moving from a hand-written scanner to pugixml: the target follows whichever
# API xml.h declares, and the library follows the parser's dependency.
file(READ ${CMAKE_SOURCE_DIR}/src/store/cloudflare/xml.h ERA_XML_H)
if(ERA_XML_H MATCHES "Element parse\\(")
  set(ERA_XML_ELEMENT_API ON)
endif()
if(TARGET pugixml::pugixml)
  target_link_libraries(era_fuzz_core PUBLIC pugixml::pugixml)
endif()

file(GLOB ERA_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/*.cpp)
foreach(src ${ERA_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(fuzz_${name} ${src})
  target_compile_options(fuzz_${name} PRIVATE ${ERA_WARNINGS})
  target_link_libraries(fuzz_${name} PRIVATE era_fuzz_core)
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
endforeach()
if(ERA_XML_ELEMENT_API)
  target_compile_definitions(fuzz_s3_xml PRIVATE ERA_XML_ELEMENT_API=1)
endif()
# The whole library is not built in this tree (only era_fuzz_core's sources are): `cmake --build
# build-fuzz` builds the targets alone.
set_target_properties(era_core PROPERTIES EXCLUDE_FROM_ALL ON)
