# kvgate::core: the JSON library and threads (settings, records, protocol, verdict, results JSON).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(nlohmann_json 3.11)
