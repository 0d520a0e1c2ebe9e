/* sim/main.c — the fleetdrill command line. */
#include <stdio.h>
int main(void) { puts("fleetdrill"); return 0; }
