# A ctest entry of its own: the number of test entries ctest knows equals the
# number of doctest cases in the test executables, so no case is silently
# dropped or split by discovery.
#   cmake -DBUILD_DIR=<dir> "-DEXES=a|b" -P check_test_count.cmake
set(doctest_total 0)
string(REPLACE "|" ";" EXES "${EXES}")
foreach(exe IN LISTS EXES)
  execute_process(COMMAND "${exe}" --count --no-version=true
    OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${exe} --count failed (${rc})")
  endif()
  if(NOT out MATCHES "unskipped test cases passing the current filters: ([0-9]+)")
    message(FATAL_ERROR "cannot read the case count of ${exe}:\n${out}")
  endif()
  math(EXPR doctest_total "${doctest_total} + ${CMAKE_MATCH_1}")
endforeach()
execute_process(COMMAND "${CMAKE_CTEST_COMMAND}" -N --test-dir "${BUILD_DIR}"
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT out MATCHES "Total Tests: ([0-9]+)")
  message(FATAL_ERROR "cannot read ctest -N:\n${out}")
endif()
# This check itself is one ctest entry beside the discovered ones.
math(EXPR ctest_total "${CMAKE_MATCH_1} - 1")
if(NOT ctest_total EQUAL doctest_total)
  message(FATAL_ERROR "ctest has ${ctest_total} test entries but doctest has ${doctest_total} cases: "
    "a name was split or dropped by discovery")
endif()
message(STATUS "ctest entries = doctest cases = ${doctest_total}")
