# The suite's check that no case is silently dropped or split by discovery:
# for each test executable, the ctest entries under its label equal its
# doctest cases, and ctest has no entry besides them (so the entries outside
# `integration` are exactly hoist_unit's cases).
#   cmake -DBUILD_DIR=<dir> -DCTEST=<ctest> "-DEXES=exe1=label1|exe2=label2" -P check_test_count.cmake

# ctest_entries(<var> [ctest selection args...]): how many entries ctest -N lists.
function(ctest_entries var)
  execute_process(COMMAND "${CTEST}" -N ${ARGN} --test-dir "${BUILD_DIR}" OUTPUT_VARIABLE out)
  if(NOT out MATCHES "Total Tests: ([0-9]+)")
    message(FATAL_ERROR "cannot read ctest -N ${ARGN}:\n${out}")
  endif()
  set(${var} ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()

string(REPLACE "|" ";" EXES "${EXES}")
set(sum 0)
foreach(pair IN LISTS EXES)
  string(REPLACE "=" ";" parts "${pair}")
  list(GET parts 0 exe)
  list(GET parts 1 label)
  execute_process(COMMAND "${exe}" --count --no-version=true
    OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${exe} --count failed (${rc})")
  endif()
  if(NOT out MATCHES "unskipped test cases passing the current filters: ([0-9]+)")
    message(FATAL_ERROR "cannot read the case count of ${exe}:\n${out}")
  endif()
  set(doctest_count ${CMAKE_MATCH_1})
  math(EXPR sum "${sum} + ${doctest_count}")
  ctest_entries(listed -L "^${label}$")
  if(NOT listed EQUAL doctest_count)
    message(FATAL_ERROR "${exe} has ${doctest_count} test cases but ctest lists ${listed} under label "
      "'${label}': a name was split (a ';' in it?) or dropped by discovery")
  endif()
  message(STATUS "${label}: ctest entries = doctest cases = ${doctest_count}")
endforeach()
ctest_entries(listed)
if(NOT listed EQUAL sum)
  message(FATAL_ERROR "ctest lists ${listed} entries but the test executables have ${sum} cases: an entry "
    "belongs to no executable's label, or a name was split")
endif()
message(STATUS "all: ctest entries = doctest cases = ${sum}")
