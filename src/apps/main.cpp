// coordexp-train entry point: only wires the CLI (all logic lives in coordexp_core).
#include "coordexp/apps/cli.h"

int main(int argc, char** argv) { return coordexp::apps::run_cli(argc, argv); }
