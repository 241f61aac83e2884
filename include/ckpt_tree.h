/*
 * ckpt_tree.h - copy one directory tree into another for the checkpoint
 * engine (internal to ckpt.c, its own module so it can be tested and
 * measured alone).
 *
 * Walks with openat/fstatat(AT_SYMLINK_NOFOLLOW)/O_NOFOLLOW only, so no
 * symlink inside the source is ever followed.  Regular files, directories
 * and symlinks are reproduced with their mode (without setuid and setgid;
 * files without the sticky bit) and mtime (not their owner:
 * everything runs with the caller's privileges); sockets, FIFOs and
 * devices are skipped (counted in stats->skipped, reported through the
 * warning hook).  Data is copied with copy_file_range (the kernel reflinks
 * where the file system can), falling back to read/write; holes are kept
 * (SEEK_DATA/SEEK_HOLE).  Hard links inside the source are not preserved:
 * each name gets its own copy.
 *
 * Directories are spread over `threads` workers (a queue of directories;
 * a worker copies a directory's entries and queues its subdirectories),
 * so two cores work on different directories, whose locks do not contend.
 *
 * Return convention: 0 / -errno with err filled.  Calls for different
 * trees may run concurrently; the warning hook is called under a mutex.
 */
#ifndef RS_CKPT_TREE_H
#define RS_CKPT_TREE_H

#include "ckpt.h"

/* How the copy is made durable. */
enum rs_ckpt_sync {
	RS_CKPT_SYNC_NONE = 0,   /* restore: scratch need not survive a crash */
	RS_CKPT_SYNC_SYNCFS,     /* one syncfs() of the destination at the end */
	RS_CKPT_SYNC_FSYNC,      /* fsync() every file and directory written */
};

typedef struct rs_ckpt_tree_opts {
	int prev_fd;              /* previous generation's part, or -1: files
	                           * unchanged since it are hard-linked */
	enum rs_ckpt_sync sync;
	unsigned long fault_after_files; /* test hook: SIGKILL self after this
	                                  * many entries; 0 = off */
	unsigned max_depth;       /* directory nesting bound; 0 = default */
	int dst_fresh;            /* dst is a directory we just created (empty):
	                           * no need to look for entries to replace */
	int set_root_attrs;       /* give dst the mode and mtime of src */
	int early_writeback;      /* SYNCFS: start writeback of each file as
	                           * soon as it is copied */
	int threads;              /* copy workers; 0 = online CPUs, at most 4 */
} rs_ckpt_tree_opts_t;

#define RS_CKPT_TREE_MAX_DEPTH 256

/*
 * Copy the contents of directory src_fd into the existing directory dst_fd,
 * then (set_root_attrs) give dst_fd src_fd's mode and mtime.  Adds to
 * stats (files, bytes, bytes_copied, bytes_linked, skipped, changed,
 * sync_seconds).  src_path
 * and dst_path only name things in messages.  An entry already present in
 * dst is replaced (restore into a non-empty scratch); an entry that
 * vanishes from src while being read is counted in stats->changed and left
 * out.  Fails on the first unreadable entry or write error.
 */
int rs_ckpt_tree_copy(int src_fd, int dst_fd, const char *src_path,
		      const char *dst_path, const rs_ckpt_tree_opts_t *opts,
		      rs_ckpt_stats_t *stats, rs_err_t *err);

/* Remove the directory entry name under dirfd and everything below it, not
 * following symlinks.  ENOENT counts as success. */
int rs_ckpt_tree_remove(int dirfd, const char *name, rs_err_t *err);

/* Send a warning to the hook set with rs_ckpt_set_warn() (ckpt.h). */
void rs_ckpt_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
