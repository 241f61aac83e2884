/* libFuzzer target: manifest.json and the per-part sidecars (node-P.json)
 * are files a user can write, and root's CLI reads them (status, ckpt list,
 * ckpt verify).  The input's first byte picks where the rest goes:
 *
 *   0  CKPT_DIR/manifest.json, then the readers: rs_manifest_read,
 *      rs_ckpt_latest, rs_ckpt_verify;
 *   1  gen-000001/node-0.json of a generation `latest` points to but the
 *      manifest does not record, then verify, restore, and a save, whose
 *      repair rebuilds the record from the sidecar (every number in it
 *      converted: time_unix, counts, nparts);
 *   2  manifest.json next to a valid generation, then verify, restore and
 *      a save (repair walks the records' "gen" values, prunes, rewrites).
 *
 * Everything happens in a private folder on tmpfs (/dev/shm when there is
 * one: saves fsync).  Built with -fsanitize=undefined
 * -fno-sanitize-recover=all: a double->int conversion out of range or a
 * signed overflow on a value from the file stops the run. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_tree.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[256], C[300], S[300], R[300];
static int base_fd = -1;

/* Leave nothing behind in /dev/shm (libFuzzer ends with exit()). */
static void _cleanup(void)
{
	char parent[256], *slash;
	int pfd;

	snprintf(parent, sizeof(parent), "%s", base);
	slash = strrchr(parent, '/');
	if (!slash)
		return;
	*slash = '\0';
	pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0) {
		rs_ckpt_tree_remove(pfd, slash + 1, NULL);
		close(pfd);
	}
}

static void _init(void)
{
	const char *t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(base, sizeof(base), "%s/rs-fuzz-manifest-XXXXXX", t);
	if (!mkdtemp(base))
		abort();
	snprintf(C, sizeof(C), "%s/c", base);
	snprintf(S, sizeof(S), "%s/s", base);
	snprintf(R, sizeof(R), "%s/r", base);
	base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base_fd < 0 || mkdir(S, 0700) < 0)
		abort();
	atexit(_cleanup);
	setenv("RS_CKPT_THREADS", "1", 1);
	setenv("RS_CKPT_LOCK_TIMEOUT", "1", 1);
}

static void _put(int dirfd, const char *name, const void *p, size_t n)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);

	if (fd < 0)
		abort();
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			abort();
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	close(fd);
}

static const char valid_sidecar[] =
	"{\"part\":0,\"nparts\":1,\"node\":\"n1\",\"job_id\":\"42\","
	"\"attempt\":1,\"seq\":1,\"reason\":\"manual\",\"files\":1,"
	"\"bytes\":3,\"seconds\":0.001,\"time_unix\":1700000000}";
static const char empty_manifest[] =
	"{\"schema\":1,\"next_gen\":2,\"generations\":[]}";

/* gen-000001 with part 0 (its sidecar given), `latest` pointing to it. */
static void _generation(int cfd, const void *sidecar, size_t n)
{
	int g;

	if (mkdirat(cfd, "gen-000001", 0700) < 0)
		abort();
	g = openat(cfd, "gen-000001", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g < 0 || mkdirat(g, "node-0", 0700) < 0)
		abort();
	_put(g, "node-0.json", sidecar, n);
	{
		int nd = openat(g, "node-0", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (nd < 0)
			abort();
		_put(nd, "f", "abc", 3);
		close(nd);
	}
	close(g);
	if (symlinkat("gen-000001", cfd, "latest") < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *root = NULL;
	rs_ckpt_stats_t st;
	char buf[512];
	long gen;
	rs_err_t e;
	int cfd, mode;

	if (base_fd < 0)
		_init();
	if (size < 1)
		return 0;
	mode = data[0] % 3;
	data++;
	size--;
	rs_ckpt_tree_remove(base_fd, "c", NULL);
	rs_ckpt_tree_remove(base_fd, "r", NULL);
	if (mkdir(C, 0700) < 0)
		abort();
	cfd = open(C, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0)
		abort();
	switch (mode) {
	case 0:
		_put(cfd, RS_MANIFEST_NAME, data, size);
		break;
	case 1:
		_put(cfd, RS_MANIFEST_NAME, empty_manifest,
		     sizeof(empty_manifest) - 1);
		_generation(cfd, data, size);
		break;
	default:
		_put(cfd, RS_MANIFEST_NAME, data, size);
		_generation(cfd, valid_sidecar, sizeof(valid_sidecar) - 1);
		break;
	}
	close(cfd);

	/* Every failure must say why. */
	if (rs_manifest_read(C, &root, &e) < 0 && !e.msg[0])
		abort();
	json_object_put(root);
	root = NULL;
	if (rs_ckpt_latest(C, buf, sizeof(buf), &gen, &e) < 0 && !e.msg[0])
		abort();
	if (rs_ckpt_verify(C, &e) < 0 && !e.msg[0])
		abort();
	if (mode != 0) {
		if (rs_ckpt_restore(C, R, -1, 0, &st, &e) < 0 && !e.msg[0])
			abort();
		if (rs_ckpt_save(S, C, 1, NULL, &st, &e) < 0 && !e.msg[0])
			abort();
		if (rs_manifest_read(C, &root, &e) < 0 && !e.msg[0])
			abort();
		json_object_put(root);
	}
	return 0;
}
