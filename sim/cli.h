/* sim/cli.h — fleetdrill's subcommands (argument parsing, output, exit codes). */
#ifndef FDL_CLI_H
#define FDL_CLI_H

/* Exit codes shared by every subcommand. */
enum {
    FDL_EXIT_OK = 0,
    FDL_EXIT_ERROR = 1,       /* setup or runtime error (message on stderr) */
    FDL_EXIT_USAGE = 2,       /* bad command line */
    FDL_EXIT_INCOMPLETE = 3,  /* the run finished, but not every device connected */
    FDL_EXIT_FINDINGS = 4,    /* what was examined is not OK: audit findings of high severity or worse,
                                 a drill's pass rate below --min-pass, regressions in a report compare */
    FDL_EXIT_INTERRUPTED = 130,
};

int fdl_cli_main(int argc, char **argv);

int fdl_cmd_pki(int argc, char **argv);
int fdl_cmd_device(int argc, char **argv);
int fdl_cmd_provision(int argc, char **argv);
int fdl_cmd_run(int argc, char **argv);
int fdl_cmd_bench(int argc, char **argv);
int fdl_cmd_audit(int argc, char **argv);   /* sim/cmd_audit.c */
int fdl_cmd_drill(int argc, char **argv);   /* sim/cmd_drill.c */
int fdl_cmd_matrix(int argc, char **argv);  /* sim/cmd_drill.c */
int fdl_cmd_report(int argc, char **argv);  /* sim/cmd_drill.c */
int fdl_cmd_fw(int argc, char **argv);      /* sim/cmd_fw.c */

/* SIGINT/SIGTERM stop the fleet gracefully (a second one kills the broker and exits
 * 130), SIGPIPE is ignored, and brokers are stopped at exit. */
void fdl_cli_install_signals(void);

#endif
