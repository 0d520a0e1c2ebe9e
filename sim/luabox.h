/*
 * sim/luabox.h — a sandboxed Lua 5.4 state, shared by everything that runs Lua
 * written by someone else: the JITR registration rules (cloud/rules.c) and the
 * scenario drills (sim/scenario.c).
 *
 * The sandbox is an environment table, not _G: the chunks it loads see only
 * the pure base functions (assert, error, ipairs, pairs, pcall, select,
 * tonumber, tostring, type, xpcall, next, raw*, get/setmetatable, print) and
 * the string, table, math and utf8 libraries; optionally os.time, os.clock,
 * os.date and os.difftime. There is no io, no os.execute, no package or
 * require, no load/loadfile/dofile, no debug, no collectgarbage: nothing that
 * reaches the file system, runs a process, or loads native code or bytecode.
 * Files are loaded as text only (mode "t"), so crafted bytecode cannot be fed
 * to the VM. With unsafe = 1 (`--unsafe-lua`) the environment is _G with the
 * whole standard library and bytecode is accepted.
 *
 * Bounds: memory through a capped allocator (sim/alloc.h underneath), and each
 * call through fdl_luabox_pcall has an instruction budget, so a loop in a
 * script fails with an error instead of stalling its host. Errors carry
 * "file:line: message".
 *
 * Threads: one state per thread.
 */
#ifndef FDL_LUABOX_H
#define FDL_LUABOX_H

#include <stddef.h>

#include <lua.h>

/* Bytes a sandboxed state may allocate by default: scenarios and rules are small programs. */
#define FDL_LUABOX_MEM_DEFAULT (64u << 20)

typedef struct fdl_luabox_opts {
    size_t mem_max;       /* bytes; 0 = FDL_LUABOX_MEM_DEFAULT */
    int with_os_time;     /* 1: os.time, os.clock, os.date, os.difftime in the sandbox */
    int unsafe;           /* 1: no sandbox at all (the environment is _G, bytecode accepted) */
} fdl_luabox_opts;

/* A new state with the standard libraries opened and the sandbox built; NULL when
 * out of memory. o NULL = defaults. Close with fdl_luabox_close (NULL is a no-op). */
lua_State *fdl_luabox_new(const fdl_luabox_opts *o);
void fdl_luabox_close(lua_State *L);

/* Pushes the sandbox environment table (or _G when unsafe). */
void fdl_luabox_push_env(lua_State *L);

/*
 * Loads a file (text only, unless unsafe) as a function whose _ENV is the sandbox,
 * and pushes it. 0, or -1 with "file:line: message" (syntax errors) in err and
 * nothing pushed.
 */
int fdl_luabox_loadfile(lua_State *L, const char *path, char *err, size_t errcap);

/*
 * lua_pcall with an error handler that keeps the message (file:line: ...) and an
 * instruction budget of `budget` VM instructions for the whole call (0 = none).
 * Returns 0 (results on the stack), or -1 with the message in err (the stack
 * restored to below the function and its arguments).
 */
int fdl_luabox_pcall(lua_State *L, int nargs, int nresults, int budget, char *err, size_t errcap);

/*
 * Errors raised by C functions point at the script line that called them, even
 * through library code: after fdl_luabox_set_main(L, path) (the file loaded with
 * fdl_luabox_loadfile), fdl_luabox_error raises "path:line: message" with the
 * line of the innermost frame running that file (or luaL_where(L, 1) when none
 * is). It does not return.
 */
void fdl_luabox_set_main(lua_State *L, const char *path);
int fdl_luabox_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Bytes the state holds now, and its ceiling. */
size_t fdl_luabox_mem_used(lua_State *L);

#endif
