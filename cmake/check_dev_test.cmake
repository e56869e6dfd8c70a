cmake_minimum_required(VERSION 3.20)
# `./dev test` (and so .ci/run) must run the package test: its ctest call
# filters no label out, and the build dir has a test labelled "package".
# Usage: cmake -DROOT=<source dir> -DBUILD_DIR=<build dir> -DCTEST=<ctest> -P check_dev_test.cmake
file(STRINGS "${ROOT}/dev" ctest_lines REGEX "^[^#]*ctest ")
if(NOT ctest_lines)
  message(FATAL_ERROR "dev: no ctest call found in ${ROOT}/dev")
endif()
foreach(line ${ctest_lines})
  if(line MATCHES "(^| )(-L|-LE|-E|-R|--label-regex|--label-exclude|--exclude-regex|--tests-regex)( |=)")
    message(FATAL_ERROR "dev: `${line}` selects tests: ./dev test must run every label, package too")
  endif()
endforeach()
execute_process(COMMAND "${CTEST}" -N -L "^package$" WORKING_DIRECTORY "${BUILD_DIR}"
                OUTPUT_VARIABLE listed RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT listed MATCHES "integration/package: ")
  message(FATAL_ERROR "no ctest entry \"package: ...\" with label package in ${BUILD_DIR}:\n${listed}")
endif()
message(STATUS "./dev test runs the package test")
