/* sim/main.c — the fleetdrill command line entry point. */
#include "sim/cli.h"

int main(int argc, char **argv)
{
    return fdl_cli_main(argc, argv);
}
