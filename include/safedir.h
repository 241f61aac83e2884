/*
 * safedir.h - the one way the project opens a folder on a user path
 * (scratch, the checkpoint folder, the private folder, state_dir).
 *
 * The path is walked one component at a time from "/" with openat(), so a
 * folder that is renamed or swapped for a symlink while we look cannot
 * send us elsewhere; the final folder is checked after it is opened
 * (fstat on the descriptor), and the caller then works relative to the
 * descriptor only (openat, fstatat, unlinkat, fchmod ...), or through
 * rs_safedir_fd_path() where a path-based API must be used.
 *
 * Rules (docs/security.md):
 *  - the path is absolute and has no "." or ".." component (-EINVAL);
 *  - the final component is a real folder, never a symlink (-ELOOP), owned
 *    by `owner` and not writable by group or others (-EPERM), with a
 *    message that names the folder, its owner and mode, and what to do;
 *  - an intermediate folder writable by others must have the sticky bit
 *    (/tmp); a symlink on the way is followed only if root or `owner`
 *    owns it;
 *  - RS_SAFEDIR_STRICT (root's own folders, e.g. state_dir): every
 *    component is owned by root or `owner` and writable by nobody else
 *    (a root-owned sticky folder such as /tmp excepted: nobody else can
 *    rename or replace what root keeps in it), no symlink anywhere;
 *  - RS_SAFEDIR_CREATE: missing components are created 0700 with the
 *    caller's privileges (mkdirat; the final one is then fchmod 0700).
 *    A component someone else creates between our look and our mkdirat
 *    (EEXIST) is looked at again and judged like any other; a final
 *    symlink, even a dangling one, is never created through.
 *
 * Symlinks on the way are resolved like the kernel does: a ".." in their
 * target goes to the physical parent, which is then judged as a folder on
 * the way; at most 32 of them (-ELOOP).  Folders on the way are opened
 * O_PATH, so search permission is enough (/home at 0711).  Messages name
 * the folder that broke a rule (ownership, mode in octal) and the fix.
 *
 * Return convention: a descriptor (>= 0, O_RDONLY|O_DIRECTORY|O_CLOEXEC)
 * or -errno with err filled.
 */
#ifndef RS_SAFEDIR_H
#define RS_SAFEDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define RS_SAFEDIR_CREATE 0x1
#define RS_SAFEDIR_STRICT 0x2

/* `what` names the folder's role in messages ("scratch", "checkpoint
 * folder", "state_dir"); may be NULL. */
int rs_safedir_open(const char *path, uid_t owner, int flags,
		    const char *what, rs_err_t *err);

/* "/proc/self/fd/N" for an open descriptor: a path that resolves to the
 * very folder that was checked, for code that takes a path.  0, -ENOSPC
 * if len is too small, -EINVAL for fd < 0 or buf NULL. */
int rs_safedir_fd_path(int fd, char *buf, size_t len);

#endif
