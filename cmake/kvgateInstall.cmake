# install/export so that consumers can find_package(kvgate [COMPONENTS ...]) and link kvgate::kvgate
# or a component. One export set per component, so a consumer loads only the targets (and finds only
# the dependencies) of the components it asks for.
include(CMakePackageConfigHelpers)

set(kvgate_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/kvgate)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(component IN ITEMS model stats engine experiment core http python report)
  install(TARGETS kvgate_${component} EXPORT kvgate-${component}-targets)
  install(EXPORT kvgate-${component}-targets NAMESPACE kvgate:: DESTINATION ${kvgate_cmake_dir})
endforeach()
install(TARGETS kvgate EXPORT kvgate-all-targets)
install(EXPORT kvgate-all-targets NAMESPACE kvgate:: DESTINATION ${kvgate_cmake_dir})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvgateConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kvgateConfig.cmake
  INSTALL_DESTINATION ${kvgate_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kvgateConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  ${PROJECT_BINARY_DIR}/kvgateConfig.cmake
  ${PROJECT_BINARY_DIR}/kvgateConfigVersion.cmake
  DESTINATION ${kvgate_cmake_dir})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/cmake/deps/ DESTINATION ${kvgate_cmake_dir}/deps)
