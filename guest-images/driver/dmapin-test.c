// SPDX-License-Identifier: GPL-2.0
/*
 * dmapin-test: smoke test for /dev/dmapin (no device DMA involved).
 * Pins/queries/releases pages of an mmap'd file with every method and
 * checks argument validation.  Needs CONFIG_VIRTIO_DMAPIN_NODEV=y when
 * there is no device (POST then fails with ENODEV, which is expected).
 * Build: mkdir -p inc/linux; cp virtio_dmapin.h (next to this file) inc/linux/;
 *        gcc -static -O2 -Iinc -o dmapin-test dmapin-test.c
 * Usage: dmapin-test [FILE]   (default /tmp/dmapin.f)
 * Run as PID 1 it mounts devtmpfs and tmpfs first and reboots at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <linux/virtio_dmapin.h>

static int fails;
#define CHECK(c, ...) do { if (!(c)) { fails++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static const char *mname[] = { "GUP", "GUP_FAST", "PIN", "PIN_FAST", "PIN_LONGTERM", "PIN_FAST_LONGTERM" };
static const char *rname[] = { "DIRTY_LOCK", "DIRTY_NOLOCK", "NO_DIRTY" };

static void query(int fd, unsigned int id)
{
	struct dmapin_query q = { .region_id = id };

	if (ioctl(fd, DMAPIN_IOC_QUERY, &q)) {
		printf("  QUERY %u: %s\n", id, strerror(errno));
		fails++;
		return;
	}
	printf("  QUERY %u: npinned %u inflight %u posted %llu dirty %u wb %u private %u nomap %u pinned %u\n",
	       id, q.npinned, q.inflight, (unsigned long long)q.posted, q.nr_dirty,
	       q.nr_writeback, q.nr_private, q.nr_no_mapping, q.nr_maybe_pinned);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/tmp/dmapin.f";
	long ps = sysconf(_SC_PAGESIZE);
	size_t len = 4 * ps;
	int init = getpid() == 1, fd, ffd;
	unsigned int m, r;
	char *p;

	if (init) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
		mkdir("/tmp", 01777);
		mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
		mkdir("/proc", 0755);
		mount("proc", "/proc", "proc", 0, NULL);
	}
	fd = open("/dev/dmapin", O_RDWR);
	if (fd < 0) {
		printf("dmapin-test: open /dev/dmapin: %s\n", strerror(errno));
		goto out;
	}
	ffd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (ffd < 0 || ftruncate(ffd, len)) {
		printf("dmapin-test: %s: %s\n", path, strerror(errno));
		fails++;
		goto out;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
	if (p == MAP_FAILED) {
		printf("mmap: %s\n", strerror(errno));
		fails++;
		goto out;
	}
	memset(p, 'a', len);

	for (m = DMAPIN_GUP; m <= DMAPIN_PIN_FAST_LONGTERM; m++) {
		for (r = DMAPIN_REL_DIRTY_LOCK; r <= DMAPIN_REL_NO_DIRTY; r++) {
			struct dmapin_pin pin = { .addr = (unsigned long)p, .len = len,
						  .method = m, .flags = DMAPIN_WRITE };
			struct dmapin_release rel = { .method = r };
			struct dmapin_post post = { .file_offset = 0 };
			int ret = ioctl(fd, DMAPIN_IOC_PIN, &pin);

			printf("PIN %s WRITE: ret %d region %u npinned %u/%u err %d\n",
			       mname[m], ret, pin.region_id, pin.npinned, pin.npages, pin.err);
			CHECK(ret == 0, "PIN ioctl %s", strerror(errno));
			if (!pin.region_id)
				continue;
			query(fd, pin.region_id);
			post.region_id = pin.region_id;
			ret = ioctl(fd, DMAPIN_IOC_POST, &post);
			printf("  POST: ret %d errno %d posted %u err %d\n", ret, ret ? errno : 0,
			       post.posted, post.err);
			rel.region_id = pin.region_id;
			ret = ioctl(fd, DMAPIN_IOC_RELEASE, &rel);
			printf("  RELEASE %s: %d\n", rname[r], ret ? -errno : 0);
			CHECK(ret == 0, "RELEASE");
			ret = ioctl(fd, DMAPIN_IOC_RELEASE, &rel);
			CHECK(ret == -1 && errno == ENOENT, "double RELEASE gave %d/%d", ret, errno);
		}
	}

	/* Bad input. */
	{
		struct dmapin_pin pin = { .addr = (unsigned long)p, .len = len };
		struct dmapin_release rel = { .region_id = 12345 };
		struct dmapin_query q = { .region_id = 0 };

		pin.len = 0;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "len 0");
		pin.len = len - 1;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "unaligned len");
		pin.len = len; pin.addr += 1;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "unaligned addr");
		pin.addr = -4096ULL; pin.len = 8192;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "overflow");
		pin.addr = (unsigned long)p; pin.len = DMAPIN_MAX_LEN + 4096;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "too long");
		pin.len = len; pin.method = 99;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "bad method");
		pin.method = 0; pin.flags = 0x80;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == -1 && errno == EINVAL, "bad flags");
		CHECK(ioctl(fd, DMAPIN_IOC_RELEASE, &rel) == -1 && errno == ENOENT, "bad id");
		rel.region_id = 0; rel.method = 7;
		CHECK(ioctl(fd, DMAPIN_IOC_RELEASE, &rel) == -1 && errno == EINVAL, "bad rel method");
		CHECK(ioctl(fd, DMAPIN_IOC_QUERY, &q) == -1 && errno == ENOENT, "query id 0");
		CHECK(ioctl(fd, DMAPIN_IOC_QUERY, (void *)16) == -1 && errno == EFAULT, "bad ptr");
		CHECK(ioctl(fd, _IO(0xd7, 99)) == -1 && errno == ENOTTY, "bad cmd");
		/* Unmapped range: the API's own error. */
		pin.addr = 4096; pin.len = 4096; pin.flags = 0; pin.method = DMAPIN_PIN;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == 0 && pin.err == -EFAULT && !pin.region_id,
		      "unmapped: err %d", pin.err);
		/* Partial: last page unmapped. */
		munmap(p + 3 * ps, ps);
		pin.addr = (unsigned long)p; pin.len = len; pin.method = DMAPIN_PIN_FAST;
		CHECK(ioctl(fd, DMAPIN_IOC_PIN, &pin) == 0, "partial");
		printf("partial PIN_FAST: region %u npinned %u/%u err %d\n",
		       pin.region_id, pin.npinned, pin.npages, pin.err);
	}
	/* Region limit, then close with everything pinned. */
	{
		int n = 0;

		for (;;) {
			struct dmapin_pin pin = { .addr = (unsigned long)p, .len = ps,
						  .method = DMAPIN_PIN_LONGTERM };
			if (ioctl(fd, DMAPIN_IOC_PIN, &pin))
				break;
			n++;
		}
		printf("regions until failure: %d (errno %s)\n", n, strerror(errno));
		CHECK(errno == ENOSPC, "limit");
	}
	close(fd);
	{
		char buf[4096];
		int v = open("/proc/vmstat", O_RDONLY);
		ssize_t k = v >= 0 ? read(v, buf, sizeof(buf) - 1) : -1;

		if (k > 0) {
			char *s;

			buf[k] = 0;
			for (s = strtok(buf, "\n"); s; s = strtok(NULL, "\n"))
				if (!strncmp(s, "nr_foll_pin", 11))
					printf("%s\n", s);
		}
	}
	printf("dmapin-test: %s (%d failures)\n", fails ? "FAILED" : "OK", fails);
out:
	if (init) {
		sync();
		reboot(RB_AUTOBOOT);
	}
	return fails ? 1 : 0;
}
