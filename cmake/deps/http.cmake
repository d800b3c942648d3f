# kvgate::http: cpp-httplib. 0.11 on Debian is a shared library with no CMake config. Its pkg-config
# file carries the OpenSSL/zlib/brotli defines; without them the class layouts differ from the library's.
include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)
