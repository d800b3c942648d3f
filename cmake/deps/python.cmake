# kvgate::python: the embedded interpreter. It must be the Python that holds vLLM (the venv's base):
# a consumer names it with -DPython_EXECUTABLE; kvgate's own build pins one (CMakeLists.txt).
include(CMakeFindDependencyMacro)
find_dependency(Python 3.9 COMPONENTS Interpreter Development.Embed)
find_dependency(pybind11 2.10 CONFIG)
