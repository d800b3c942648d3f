# Finds what every component passes on, for kvgate's own build (tests, CLI, benchmark) and for a
# project that adds kvgate with add_subdirectory. The installed package finds only the components a
# consumer asks for (kvgateConfig.cmake reads cmake/deps/<component>.cmake one by one; the layers
# stats, engine, experiment and core need nothing beyond model's). Catch2 is
# only for kvgate's own tests: tests/CMakeLists.txt finds it.
foreach(component IN ITEMS model http python report)
  include(${CMAKE_CURRENT_LIST_DIR}/deps/${component}.cmake)
endforeach()
