#include "app/config.hpp"

int main(int argc, char** argv) { return kaiwa::app::runCli(argc, argv); }
