/*
 * sim/json.h — a small streaming JSON writer for reports, with a hard size ceiling.
 *
 * The writer appends to one growable buffer that never grows past max_bytes, so
 * a report built from hostile input (device names, topics a peer chose) cannot
 * exhaust memory. Commas, colons and (optionally) indentation are inserted
 * automatically: callers only open and close containers and add values.
 *
 * Keys: inside an object every value needs a non-NULL key; at the top level and
 * inside an array the key must be NULL. Exactly one top-level value is allowed.
 *
 * Errors are sticky: after the first one every call is a no-op, fdl_json_error
 * says which error it was and fdl_json_text returns NULL. Callers can therefore
 * write a whole document and check once at the end.
 *
 * Strings (keys and values) are escaped per RFC 8259: '"' and '\' get a
 * backslash, control characters U+0000..U+001F become \u00XX (lowercase hex),
 * everything else is copied as UTF-8. Invalid UTF-8 (stray continuation bytes,
 * overlong forms, surrogates, code points above U+10FFFF, truncated sequences)
 * is replaced by U+FFFD, one per maximal invalid subpart (Unicode's recommended
 * practice), so the output is always valid UTF-8.
 *
 * Memory: fdl_json_new allocates the writer, the buffer grows through
 * sim/alloc.h; fdl_json_free releases both. Not thread-safe. Every call accepts
 * the NULL a failed fdl_json_new returns: writes are no-ops, fdl_json_error(NULL)
 * is FDL_JSON_NO_MEMORY and fdl_json_text(NULL, ...) is NULL.
 */
#ifndef FDL_JSON_H
#define FDL_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of objects and arrays; deeper is FDL_JSON_TOO_DEEP. */
#define FDL_JSON_MAX_DEPTH 64

typedef enum fdl_json_status {
    FDL_JSON_OK = 0,
    FDL_JSON_TOO_LARGE,   /* the text would exceed max_bytes */
    FDL_JSON_NO_MEMORY,   /* growing the buffer failed */
    FDL_JSON_UNBALANCED,  /* an _end without its _begin, or closing the wrong kind */
    FDL_JSON_BAD_KEY,     /* a key where none is allowed, or none inside an object */
    FDL_JSON_TOO_DEEP,    /* nesting beyond FDL_JSON_MAX_DEPTH */
    FDL_JSON_AFTER_END,   /* a second top-level value */
} fdl_json_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_json_strerror(int status);

typedef struct fdl_json fdl_json;

/*
 * A new, empty writer whose text (without the terminating NUL) may grow to at
 * most max_bytes bytes, or NULL when out of memory. Free with fdl_json_free.
 */
fdl_json *fdl_json_new(size_t max_bytes);
/* Frees j and its buffer; NULL is a no-op. */
void fdl_json_free(fdl_json *j);

/* Pretty printing: on = newline and 2-space indent per level, "key": value. Set before writing. */
void fdl_json_set_pretty(fdl_json *j, int on);

/* key: borrowed, copied (escaped) into the text; see the key rule above. */
void fdl_json_obj_begin(fdl_json *j, const char *key);
void fdl_json_obj_end(fdl_json *j);
void fdl_json_arr_begin(fdl_json *j, const char *key);
void fdl_json_arr_end(fdl_json *j);

/* val: borrowed; NULL writes null. */
void fdl_json_str(fdl_json *j, const char *key, const char *val);
void fdl_json_int(fdl_json *j, const char *key, int64_t v);
void fdl_json_uint(fdl_json *j, const char *key, uint64_t v);
/*
 * NaN and infinities write null (JSON has no such numbers). Finite values use the
 * shortest of %.15g, %.16g and %.17g that reads back as exactly v, whatever the
 * C locale's decimal point.
 */
void fdl_json_num(fdl_json *j, const char *key, double v);
/* Writes true when v != 0. */
void fdl_json_bool(fdl_json *j, const char *key, int v);
void fdl_json_null(fdl_json *j, const char *key);

/* FDL_JSON_OK (0) or the first error (an fdl_json_status value). */
int fdl_json_error(const fdl_json *j);

/*
 * The finished document, NUL-terminated, and its length (without the NUL) in
 * *len (len may be NULL). Borrowed: valid until the next call on j. NULL when an
 * error occurred, when a container is still open, or when nothing was written.
 */
const char *fdl_json_text(const fdl_json *j, size_t *len);

/*
 * Writes the document plus a final newline to path atomically: into a temporary
 * file in the same directory (mode 0644), fsync, rename over path, then fsync the
 * directory, so readers see the old file or the whole new one, never a part.
 * Returns 0, -EINVAL when fdl_json_text would return NULL, or -errno from the
 * first system call that failed (the temporary file is removed then).
 */
int fdl_json_write_file(const fdl_json *j, const char *path);

#endif /* FDL_JSON_H */
