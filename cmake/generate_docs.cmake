cmake_minimum_required(VERSION 3.20)
# hoist(1) and the bash/zsh completions, written by the built binary from its
# own command table (`hoist man`, `hoist completions SHELL`), so they cannot
# drift from --help. The man page is gzipped as Debian installs them.
# Usage: cmake -DHOIST=<built hoist> -DOUT=<dir> -P generate_docs.cmake
file(MAKE_DIRECTORY "${OUT}")
function(generate file)
  execute_process(COMMAND "${HOIST}" ${ARGN} OUTPUT_FILE "${OUT}/${file}.tmp"
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "hoist ${ARGN} exited ${rc}: ${err}")
  endif()
  file(RENAME "${OUT}/${file}.tmp" "${OUT}/${file}")
endfunction()
generate(hoist.1 man)
generate(hoist.bash completions bash)
generate(_hoist completions zsh)
# -n: no name or time stamp in the header, so the package is reproducible.
execute_process(COMMAND gzip -9nf "${OUT}/hoist.1" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip of ${OUT}/hoist.1 failed (${rc})")
endif()
