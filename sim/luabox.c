/* sim/luabox.c — sandboxed Lua states: environment, capped allocator, budgeted pcall (see luabox.h). */
#include "sim/luabox.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sim/alloc.h"

/* Where the sandbox table is kept in the registry. */
#define ENV_KEY "fdl.luabox.env"
/* The largest script file read: a drill is a page, not a megabyte. */
#define FILE_MAX (1u << 20)

typedef struct box {
    size_t used, max;
    int unsafe;
    int budget;            /* of the call in progress (for the message) */
    char main[1100];       /* "@path" of the main script, "" if none */
} box;

/* Base functions that cannot reach outside the sandbox. */
static const char *const k_base_ok[] = {"assert", "error",  "ipairs",   "next",     "pairs",  "pcall", "rawequal",
                                        "rawget", "rawlen", "rawset",   "select",   "tonumber", "tostring", "type",
                                        "xpcall", "print",  "getmetatable", "setmetatable", NULL};
static const char *const k_libs_ok[] = {"string", "table", "math", "utf8", NULL};
static const char *const k_os_ok[] = {"time", "clock", "date", "difftime", NULL};

/* The allocator: every byte through sim/alloc.h, and no more than the state's ceiling. */
static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    box *b = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        fdl_free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > b->max - b->used)
        return NULL;   /* Lua raises "not enough memory" */
    void *p = fdl_realloc(ptr, nsize);
    if (p)
        b->used = b->used - old + nsize;
    return p;
}

static box *box_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

lua_State *fdl_luabox_new(const fdl_luabox_opts *o)
{
    fdl_luabox_opts d = {0};
    if (!o)
        o = &d;
    box *b = fdl_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->max = o->mem_max ? o->mem_max : FDL_LUABOX_MEM_DEFAULT;
    b->unsafe = o->unsafe;
    lua_State *L = lua_newstate(box_alloc, b);
    if (!L) {
        fdl_free(b);
        return NULL;
    }
    luaL_openlibs(L);
    if (o->unsafe) {
        lua_pushglobaltable(L);
    } else {
        lua_newtable(L);
        for (const char *const *n = k_base_ok; *n; n++) {
            lua_getglobal(L, *n);
            lua_setfield(L, -2, *n);
        }
        for (const char *const *n = k_libs_ok; *n; n++) {
            lua_getglobal(L, *n);
            lua_setfield(L, -2, *n);
        }
        if (o->with_os_time) {
            lua_newtable(L);
            lua_getglobal(L, "os");
            for (const char *const *n = k_os_ok; *n; n++) {
                lua_getfield(L, -1, *n);
                lua_setfield(L, -3, *n);
            }
            lua_pop(L, 1);
            lua_setfield(L, -2, "os");
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "_G");
    }
    lua_setfield(L, LUA_REGISTRYINDEX, ENV_KEY);
    return L;
}

void fdl_luabox_close(lua_State *L)
{
    if (!L)
        return;
    box *b = box_of(L);
    lua_close(L);
    fdl_free(b);
}

void fdl_luabox_push_env(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ENV_KEY);
}

size_t fdl_luabox_mem_used(lua_State *L)
{
    return box_of(L)->used;
}

int fdl_luabox_loadfile(lua_State *L, const char *path, char *err, size_t errcap)
{
    box *b = box_of(L);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open", path);
        return -1;
    }
    char *buf = fdl_malloc(FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    int rd_err = ferror(f);
    fclose(f);
    if (!buf || rd_err || n > FILE_MAX) {
        snprintf(err, errcap, "%s: %s", path, !buf ? "out of memory" : rd_err ? "read error" : "larger than 1 MiB");
        fdl_free(buf);
        return -1;
    }
    /* A leading "#!" line is skipped as lua.c does, keeping the line numbers. */
    size_t skip = 0;
    if (n > 1 && buf[0] == '#' && buf[1] == '!') {
        while (skip < n && buf[skip] != '\n')
            skip++;
    }
    char name[1100];
    snprintf(name, sizeof name, "@%s", path);
    int rc = luaL_loadbufferx(L, buf + skip, n - skip, name, b->unsafe ? "bt" : "t");
    fdl_free(buf);
    if (rc != LUA_OK) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "load failed");
        lua_pop(L, 1);
        return -1;
    }
    fdl_luabox_push_env(L);
    if (!lua_setupvalue(L, -2, 1))   /* the chunk's only upvalue is _ENV */
        lua_pop(L, 1);
    return 0;
}

/* After the budget is spent every instruction fails, so a script that catches the
 * error with pcall cannot keep going: the error reaches the host. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0);   /* in a hook, level 0 is the Lua function being run */
    lua_pushfstring(L, "instruction budget (%d) exhausted", box_of(L)->budget);
    lua_concat(L, 2);
    lua_error(L);
}

static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    lua_pushstring(L, msg);
    return 1;
}

int fdl_luabox_pcall(lua_State *L, int nargs, int nresults, int budget, char *err, size_t errcap)
{
    box *b = box_of(L);
    int base = lua_gettop(L) - nargs;   /* the function's index */
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    b->budget = budget;
    if (budget > 0)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, budget);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_settop(L, base - 1);
        return -1;
    }
    lua_remove(L, base);
    return 0;
}

void fdl_luabox_set_main(lua_State *L, const char *path)
{
    snprintf(box_of(L)->main, sizeof box_of(L)->main, "@%s", path ? path : "");
}

int fdl_luabox_error(lua_State *L, const char *fmt, ...)
{
    box *b = box_of(L);
    lua_Debug ar;
    int found = 0;
    /* Level 0 is the C function raising the error; walk out to the script. */
    for (int level = 1; b->main[1] && level < 200 && lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source && !strcmp(ar.source, b->main)) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            found = 1;
            break;
        }
    }
    if (!found)
        luaL_where(L, 1);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lua_error(L);
}
