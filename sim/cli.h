/* sim/cli.h — fleetdrill's subcommands (argument parsing, output, exit codes). */
#ifndef FDL_CLI_H
#define FDL_CLI_H

/* Exit codes shared by every subcommand. */
enum {
    FDL_EXIT_OK = 0,
    FDL_EXIT_ERROR = 1,       /* setup or runtime error (message on stderr) */
    FDL_EXIT_USAGE = 2,       /* bad command line */
    FDL_EXIT_INCOMPLETE = 3,  /* the run finished, but not every device connected */
    FDL_EXIT_FINDINGS = 4,    /* audit: at least one finding of high severity or worse */
    FDL_EXIT_INTERRUPTED = 130,
};

int fdl_cli_main(int argc, char **argv);

int fdl_cmd_pki(int argc, char **argv);
int fdl_cmd_device(int argc, char **argv);
int fdl_cmd_provision(int argc, char **argv);
int fdl_cmd_run(int argc, char **argv);
int fdl_cmd_bench(int argc, char **argv);
int fdl_cmd_audit(int argc, char **argv);   /* sim/cmd_audit.c */

#endif
