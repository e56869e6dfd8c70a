# Included by ctest after doctest's discovery (TEST_INCLUDE_FILES): a case
# named "corpus: ...", "suite: ..." or "chaos: ..." keeps its executable's
# label (unit, integration) and gets its own beside it, so `ctest -L corpus`
# selects it and every entry is still counted under its executable.
foreach(t IN LISTS hoist_unit_TESTS hoist_integration_TESTS)
  if(t MATCHES "^(integration/)?(corpus|suite|chaos): ")
    set(own "${CMAKE_MATCH_2}")
    if(CMAKE_MATCH_1)
      set_tests_properties("${t}" PROPERTIES LABELS "integration;${own}")
    else()
      set_tests_properties("${t}" PROPERTIES LABELS "unit;${own}")
    endif()
  endif()
endforeach()
