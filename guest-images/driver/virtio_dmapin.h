/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * virtio-dmapin: a test device that DMAs into user pages pinned by the
 * guest (pinvm testbed for GUP/pin vs. filesystem writeback).
 *
 * Two ABIs live here:
 *  - the ioctl ABI of /dev/dmapin (guest user space <-> driver);
 *  - the virtqueue wire formats (driver <-> device), all little-endian.
 */
#ifndef _UAPI_LINUX_VIRTIO_DMAPIN_H
#define _UAPI_LINUX_VIRTIO_DMAPIN_H

#include <linux/types.h>
#include <linux/ioctl.h>

/*
 * Virtio device id.  Not allocated by the virtio spec; chosen far above
 * the ids in include/uapi/linux/virtio_ids.h (at most 41 in 6.1 and 6.12) and still
 * inside 16 bits so that it would also fit a virtio-pci transport.
 * 0x5049 is "PI" in ASCII.  The driver matches any vendor id.
 */
#define VIRTIO_ID_DMAPIN		0x5049

/* Virtqueue indices. */
#define VIRTIO_DMAPIN_VQ_DMA		0	/* page buffers, device-writable */
#define VIRTIO_DMAPIN_VQ_CTL		1	/* control messages */

/*
 * dma queue: one descriptor chain per pinned page:
 *   desc 0 (device-readable):  struct virtio_dmapin_buf_hdr (24 bytes)
 *   desc 1 (device-writable):  the page, PAGE_SIZE bytes at its GPA
 *   desc 2 (device-writable):  struct virtio_dmapin_buf_status (8 bytes)
 * The device keeps the chain as long as it likes and may write into the
 * page any number of times.  When it returns the chain (used ring) it fills
 * in the status; used.len is the number of bytes it wrote (informational).
 */
struct virtio_dmapin_buf_hdr {
	__le32 region_id;
	__le32 page_index;	/* index of the page within the region */
	__le64 file_offset;	/* user-supplied offset of this page */
	__le64 gpa;		/* guest-physical address, same as desc 1 */
};

struct virtio_dmapin_buf_status {
	__le32 dma_writes;	/* DMA writes the device made into the page */
	__le32 flags;		/* reserved, 0 */
};

/*
 * ctl queue: one chain per message:
 *   desc 0 (device-readable):  struct virtio_dmapin_ctl (48 bytes)
 *   desc 1 (device-writable):  __le32 status (0 = ok, else a positive
 *                              errno value chosen by the device)
 */
#define VIRTIO_DMAPIN_CTL_START		1
#define VIRTIO_DMAPIN_CTL_STOP		2
/* Return every dma-queue chain of region_id on the used ring, soon. */
#define VIRTIO_DMAPIN_CTL_RETURN	3

struct virtio_dmapin_ctl {
	__le32 cmd;
	__le32 region_id;
	__le32 schedule;	/* START/STOP: opaque to the driver */
	__le32 reserved;	/* 0 */
	__le64 params[4];	/* START/STOP: opaque to the driver */
};

/* ------------------------------------------------------------------ */
/* ioctl ABI of /dev/dmapin.  All structs are free of implicit padding. */

/* dmapin_pin.method: the kernel API used for the pin. */
#define DMAPIN_GUP			0	/* get_user_pages (mmap_read_lock) */
#define DMAPIN_GUP_FAST			1	/* get_user_pages_fast */
#define DMAPIN_PIN			2	/* pin_user_pages (mmap_read_lock) */
#define DMAPIN_PIN_FAST			3	/* pin_user_pages_fast */
#define DMAPIN_PIN_LONGTERM		4	/* pin_user_pages + FOLL_LONGTERM */
#define DMAPIN_PIN_FAST_LONGTERM	5	/* pin_user_pages_fast + FOLL_LONGTERM */

/* dmapin_pin.flags */
#define DMAPIN_WRITE			(1U << 0)	/* FOLL_WRITE */

#define DMAPIN_MAX_LEN			(64ULL << 20)	/* per region */
#define DMAPIN_MAX_REGIONS		64		/* per open file */

struct dmapin_pin {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page aligned, 1..DMAPIN_MAX_LEN */
	__u32 method;		/* in: DMAPIN_GUP... */
	__u32 flags;		/* in: DMAPIN_WRITE */
	__u32 region_id;	/* out: 0 when nothing was pinned */
	__u32 npinned;		/* out: pages pinned (may be < npages) */
	__s32 err;		/* out: negative errno returned by the API */
	__u32 npages;		/* out: len / PAGE_SIZE */
};

struct dmapin_post {
	__u32 region_id;	/* in */
	__u32 posted;		/* out: chains added in this call */
	__u64 file_offset;	/* in: file offset of the region's page 0 */
	__s32 err;		/* out: 0 or -ENOSPC (queue full: partial) */
	__u32 reserved;
};

struct dmapin_ctl {
	__u32 region_id;	/* in */
	__u32 schedule;		/* in: opaque, passed to the device */
	__u64 params[4];	/* in: opaque, passed to the device */
	__s32 status;		/* out: -(device status), or -ETIMEDOUT */
	__u32 reserved;
};

struct dmapin_query {
	__u32 region_id;	/* in */
	__u32 method;		/* out: as pinned */
	__u32 flags;
	__u32 npages;
	__u32 npinned;
	__u32 inflight;		/* chains currently owned by the device */
	__u64 addr;
	__u64 posted;		/* chains posted, cumulative */
	__u64 completed;	/* chains returned on the used ring */
	__u64 dma_writes;	/* sum of status.dma_writes of returned chains */
	__u64 used_bytes;	/* sum of used.len of returned chains */
	/* snapshot of the pinned pages' folio state, in pages: */
	__u32 nr_dirty;
	__u32 nr_writeback;
	__u32 nr_private;	/* PG_private (e.g. buffer heads attached) */
	__u32 nr_no_mapping;	/* folio->mapping == NULL (truncated) */
	__u32 nr_maybe_pinned;	/* folio_maybe_dma_pinned() */
	__u32 reserved;
};

/* dmapin_release.method */
#define DMAPIN_REL_DIRTY_LOCK		0
#define DMAPIN_REL_DIRTY_NOLOCK		1
#define DMAPIN_REL_NO_DIRTY		2

struct dmapin_release {
	__u32 region_id;	/* in */
	__u32 method;		/* in: DMAPIN_REL_... */
};

#define DMAPIN_IOC_MAGIC	0xd7
#define DMAPIN_IOC_PIN		_IOWR(DMAPIN_IOC_MAGIC, 1, struct dmapin_pin)
#define DMAPIN_IOC_POST		_IOWR(DMAPIN_IOC_MAGIC, 2, struct dmapin_post)
#define DMAPIN_IOC_START	_IOWR(DMAPIN_IOC_MAGIC, 3, struct dmapin_ctl)
#define DMAPIN_IOC_STOP		_IOWR(DMAPIN_IOC_MAGIC, 4, struct dmapin_ctl)
#define DMAPIN_IOC_QUERY	_IOWR(DMAPIN_IOC_MAGIC, 5, struct dmapin_query)
#define DMAPIN_IOC_RELEASE	_IOW(DMAPIN_IOC_MAGIC, 6, struct dmapin_release)

#endif /* _UAPI_LINUX_VIRTIO_DMAPIN_H */
