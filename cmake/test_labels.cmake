# Included by ctest after doctest's discovery (TEST_INCLUDE_FILES): a case
# named "corpus: ...", "suite: ...", "chaos: ..." or "package: ..." keeps its
# executable's label (unit, integration) and gets its own beside it, so
# `ctest -L corpus` selects it and every entry is still counted under its
# executable.
foreach(t IN LISTS hoist_unit_TESTS hoist_integration_TESTS)
  if(t MATCHES "^(integration/)?(corpus|suite|chaos|package): ")
    set(own "${CMAKE_MATCH_2}")
    if(CMAKE_MATCH_1)
      set_tests_properties("${t}" PROPERTIES LABELS "integration;${own}")
    else()
      set_tests_properties("${t}" PROPERTIES LABELS "unit;${own}")
    endif()
    if(own STREQUAL "package")
      # build-pkg from scratch without ccache: ~830 s of CPU, 30 min measured
      # on a loaded 2-core machine (./dev test's default is 600 s).
      set_tests_properties("${t}" PROPERTIES TIMEOUT 2400)
    endif()
  endif()
endforeach()
