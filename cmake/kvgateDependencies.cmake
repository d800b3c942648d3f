# Finds the dependencies kvgate's components pass on. Used by the build and by the installed package
# config, so a consumer's find_package(kvgate) gets the same targets. (Catch2 is only for kvgate's
# own tests: tests/CMakeLists.txt finds it.)
include(CMakeFindDependencyMacro)

find_dependency(Threads)
find_dependency(nlohmann_json 3.11)

# cpp-httplib 0.11 on Debian is a shared library with no CMake config. Its pkg-config file carries
# the OpenSSL/zlib/brotli defines; without them the class layouts differ from the library's.
find_dependency(PkgConfig)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)

# The embedded interpreter must be the Python the venv was made from. Two Pythons live on our
# machines (Debian's and pyenv's); pin one instead of letting PATH decide.
if(NOT DEFINED Python_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "Python that kvgate embeds and makes its venv from")
endif()
find_dependency(Python 3.9 COMPONENTS Interpreter Development.Embed)
find_dependency(pybind11 2.10 CONFIG)

# gnuplot-iostream: a single header without a CMake config; it needs Boost.Iostreams (+ Filesystem
# and System for its temporary data files) and the gnuplot program at run time.
find_dependency(Boost 1.71 COMPONENTS iostreams filesystem system)
find_path(KVGATE_GNUPLOT_IOSTREAM_INCLUDE_DIR gnuplot-iostream.h REQUIRED)
find_program(KVGATE_GNUPLOT gnuplot)
if(NOT TARGET kvgate::gnuplot_iostream)
  add_library(kvgate::gnuplot_iostream INTERFACE IMPORTED)
  set_target_properties(kvgate::gnuplot_iostream PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${KVGATE_GNUPLOT_IOSTREAM_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Boost::iostreams;Boost::filesystem;Boost::system")
endif()
