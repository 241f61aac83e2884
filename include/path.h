/*
 * path.h - path normalisation and containment checks (pure, plus one
 * function that looks at the file system to resolve symlinks).
 * Return convention: 0 / -errno with err filled; predicates 1/0.
 */
#ifndef RS_PATH_H
#define RS_PATH_H

#include <stddef.h>

#include "err.h"

/* Lexically normalise an absolute path: collapse //, drop ., resolve ..
 * (never above /), drop a trailing /.  Lexical only: for a path that may
 * hold symlinks, ".." is judged by rs_path_resolve().  -EINVAL if path is not absolute,
 * -ENAMETOOLONG if out is too small. */
int rs_path_normalize(const char *path, char *out, size_t len, rs_err_t *err);

/* 1 if normalised `path` is `root` or below it (component-wise, so
 * /data2 is not under /data), else 0.  Both must be normalised. */
int rs_path_is_under(const char *path, const char *root);

/* Where absolute `path` really goes: component by component, each symlink
 * replaced by its target (also a dangling one: that is where a mkdir
 * would create), ".." applied to what was resolved so far - never
 * collapsed lexically first, so ROOT/link/../x is link's parent's x.  The
 * part that does not exist is appended as it is, normalised.  With the
 * caller's privileges.  0 / -errno (-ELOOP after 40 links). */
int rs_path_resolve(const char *path, char *out, size_t len, rs_err_t *err);

/* mkdir -p: create path and its missing parents with mode 0700 (what
 * exists is left as it is), with the caller's privileges.  0 / -errno
 * with err naming the folder that could not be created. */
int rs_path_mkdir_p(const char *path, rs_err_t *err);

#endif
