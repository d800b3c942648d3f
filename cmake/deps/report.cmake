# kvgate::report: gnuplot-iostream, a single header without a CMake config; it needs Boost.Iostreams
# (+ Filesystem and System for its temporary data files) and the gnuplot program at run time.
include(CMakeFindDependencyMacro)
find_dependency(Boost 1.71 COMPONENTS iostreams filesystem system)
find_path(KVGATE_GNUPLOT_IOSTREAM_INCLUDE_DIR gnuplot-iostream.h REQUIRED)
find_program(KVGATE_GNUPLOT gnuplot)
if(NOT TARGET kvgate::gnuplot_iostream)
  add_library(kvgate::gnuplot_iostream INTERFACE IMPORTED)
  set_target_properties(kvgate::gnuplot_iostream PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${KVGATE_GNUPLOT_IOSTREAM_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Boost::iostreams;Boost::filesystem;Boost::system")
endif()
