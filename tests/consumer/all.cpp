// kvgate::kvgate: everything, including the engine factory; building an engine with no server
// named is misuse and says so.
#include <iostream>
#include <stdexcept>

#include "kvgate.hpp"

int main() {
    kvgate::Settings s;
    try {
        kvgate::make_engine(s);
    } catch (const std::invalid_argument& e) {
        std::cout << "consumer_all: " << e.what() << "\n";
        return 0;
    }
    return 1;
}
