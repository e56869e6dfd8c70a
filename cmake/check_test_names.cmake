# Fails the build when a doctest case name would not map to exactly one
# ctest entry: CTest discovery splits a name at ';' (two entries, each running
# zero cases, both "passing"), and doctest's --test-case filter treats '*' and
# '?' as wildcards and a leading/trailing blank as a different name.
#   cmake -DEXE=<test executable> -P check_test_names.cmake
execute_process(COMMAND "${EXE}" --list-test-cases --no-version=true --no-intro=true
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} --list-test-cases failed (${rc})")
endif()
# Escape ';' before splitting lines so it survives as a character.
string(REPLACE ";" "<SEMICOLON>" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(bad "")
set(count 0)
foreach(line IN LISTS lines)
  if(line MATCHES "^===" OR line MATCHES "^\\[doctest\\]" OR line STREQUAL "")
    continue()
  endif()
  math(EXPR count "${count} + 1")
  if(line MATCHES "<SEMICOLON>" OR line MATCHES "[*?]" OR line MATCHES "^[ \t]" OR line MATCHES "[ \t]$")
    string(REPLACE "<SEMICOLON>" ";" shown "${line}")
    string(APPEND bad "\n  \"${shown}\"")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "test names that CTest or doctest's filter would split or widen "
    "(no ';', '*', '?' or leading/trailing blanks in a TEST_CASE name):${bad}")
endif()
if(count EQUAL 0)
  message(FATAL_ERROR "${EXE} lists no test cases")
endif()
