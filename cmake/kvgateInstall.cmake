# install/export so that consumers can find_package(kvgate) and link kvgate::kvgate or a component.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS kvgate kvgate_core kvgate_http kvgate_python kvgate_report EXPORT kvgateTargets)
install(EXPORT kvgateTargets NAMESPACE kvgate:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvgate)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvgateConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kvgateConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvgate)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kvgateConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  ${PROJECT_BINARY_DIR}/kvgateConfig.cmake
  ${PROJECT_BINARY_DIR}/kvgateConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/kvgateDependencies.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvgate)
