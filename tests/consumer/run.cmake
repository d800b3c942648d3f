# ctest -R consumer: configures, builds and runs tests/consumer against this build of kvgate.
#   cmake -DMODE=find_package|find_package_core|add_subdirectory -DKVGATE_SOURCE=... -DKVGATE_BUILD=...
#         -DWORK=... -DPYTHON=... -P run.cmake
# PYTHON: the Python kvgate's build embeds; a consumer names its own (the package pins none).
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer (${MODE}): failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
set(args -DKVGATE_CONSUMER_MODE=${MODE} -DKVGATE_SOURCE=${KVGATE_SOURCE})
if(NOT MODE STREQUAL "find_package_core")
  list(APPEND args -DPython_EXECUTABLE=${PYTHON})
endif()
if(MODE MATCHES "^find_package")
  run(${CMAKE_COMMAND} --install ${KVGATE_BUILD} --prefix ${WORK}/prefix --config "${CONFIG}")
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK}/prefix)
endif()
run(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK}/build ${args})
run(${CMAKE_COMMAND} --build ${WORK}/build -j2)
run(${WORK}/build/consumer_core)
if(NOT MODE STREQUAL "find_package_core")
  run(${WORK}/build/consumer_all)
endif()
