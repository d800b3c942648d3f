# kvgate::model (and so every component): the JSON library and threads.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(nlohmann_json 3.11)
