// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmapin: pin user pages with a chosen GUP/pin API, hand their
 * guest-physical addresses to a (VMM-emulated) device that DMAs into them,
 * and release them with a chosen dirtying policy.  Test driver for the
 * pinvm testbed (pinned file pages vs. filesystem writeback).
 *
 * /dev/dmapin is registered when the virtio device probes.  State is per
 * open file: a list of pinned regions.  Region ids are unique per device
 * because they appear on the wire.
 *
 * Locking: dmapin_file.lock (mutex) serialises the ioctls of one file and
 * protects its region list; dmapin_dev.lock (spinlock, irq-safe) protects
 * the virtqueues, the in-flight token lists and the region counters the
 * virtqueue callbacks update; dmapin_dev.ctl_mutex allows one control
 * message at a time; dmapin_dev.rw (rwsem) keeps remove() away from ioctls
 * that touch the virtqueues.
 */

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/version.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/scatterlist.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/completion.h>
#include <linux/rwsem.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <uapi/linux/virtio_dmapin.h>

static unsigned int release_timeout_ms = 5000;
module_param(release_timeout_ms, uint, 0644);
MODULE_PARM_DESC(release_timeout_ms,
		 "How long RELEASE/close and control messages wait for the device");

struct dmapin_dev {
	struct virtio_device *vdev;
	struct virtqueue *dma_vq;
	struct virtqueue *ctl_vq;
	spinlock_t lock;		/* vqs, tokens, region counters */
	struct mutex ctl_mutex;		/* one control message at a time */
	struct rw_semaphore rw;		/* ioctls (read) vs. remove (write) */
	bool dead;			/* under rw (write) */
	wait_queue_head_t wq;		/* region in-flight counts dropped */
	struct kref ref;
	struct miscdevice misc;
	atomic_t next_region_id;
};

struct dmapin_region {
	struct list_head node;		/* dmapin_file.regions */
	u32 id;
	u32 method;
	u32 flags;
	u32 npages;
	u32 npinned;
	u64 addr;
	struct page **pages;
	/* under dmapin_dev.lock: */
	struct list_head tokens;	/* chains owned by the device */
	u32 inflight;
	u64 posted;
	u64 completed;
	u64 dma_writes;
	u64 used_bytes;
};

/* One dma-queue chain; the token passed to virtqueue_add_sgs(). */
struct dmapin_token {
	struct virtio_dmapin_buf_hdr hdr;
	struct virtio_dmapin_buf_status st;
	struct list_head node;		/* region->tokens, under dev->lock */
	struct dmapin_region *region;	/* NULL once orphaned */
};

/* One ctl-queue message. */
struct dmapin_ctl_req {
	struct virtio_dmapin_ctl msg;
	__le32 status;
	struct completion done;
	bool abandoned;			/* under dev->lock */
	bool finished;			/* under dev->lock */
};

struct dmapin_file {
	struct dmapin_dev *dev;
	struct mutex lock;
	struct list_head regions;
	unsigned int nregions;
};

static DEFINE_MUTEX(dmapin_global_lock);
static struct dmapin_dev *dmapin_the_dev;	/* only one /dev/dmapin */

static void dmapin_dev_free(struct kref *ref)
{
	kfree(container_of(ref, struct dmapin_dev, ref));
}

/* ---------------------------------------------------------------- vqs */

static void dmapin_token_done(struct dmapin_token *tok, unsigned int len)
{
	struct dmapin_region *r = tok->region;

	if (r) {
		list_del(&tok->node);
		r->inflight--;
		r->completed++;
		r->used_bytes += len;
		r->dma_writes += le32_to_cpu(tok->st.dma_writes);
	}
	kfree(tok);
}

static void dmapin_dma_done(struct virtqueue *vq)
{
	struct dmapin_dev *dev = vq->vdev->priv;
	struct dmapin_token *tok;
	unsigned long irqflags;
	unsigned int len;

	spin_lock_irqsave(&dev->lock, irqflags);
	do {
		virtqueue_disable_cb(vq);
		while ((tok = virtqueue_get_buf(vq, &len)))
			dmapin_token_done(tok, len);
	} while (!virtqueue_enable_cb(vq));
	spin_unlock_irqrestore(&dev->lock, irqflags);
	wake_up_all(&dev->wq);
}

static void dmapin_ctl_finish(struct dmapin_ctl_req *req)
{
	if (req->abandoned) {
		kfree(req);
		return;
	}
	req->finished = true;
	complete(&req->done);
}

static void dmapin_ctl_done(struct virtqueue *vq)
{
	struct dmapin_dev *dev = vq->vdev->priv;
	struct dmapin_ctl_req *req;
	unsigned long irqflags;
	unsigned int len;

	spin_lock_irqsave(&dev->lock, irqflags);
	while ((req = virtqueue_get_buf(vq, &len)))
		dmapin_ctl_finish(req);
	spin_unlock_irqrestore(&dev->lock, irqflags);
}

/*
 * Send one control message and wait for the device's answer.  Called with
 * dev->rw held for reading.  Returns 0 or a negative errno; *status gets
 * the device's status (0 = ok).
 */
static int dmapin_send_ctl(struct dmapin_dev *dev, u32 cmd, u32 region_id,
			   u32 schedule, const u64 *params, u32 *status)
{
	struct scatterlist out, in, *sgs[2];
	struct dmapin_ctl_req *req;
	unsigned long irqflags;
	int i, err;

	if (dev->dead)
		return -ENODEV;
	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	req->msg.cmd = cpu_to_le32(cmd);
	req->msg.region_id = cpu_to_le32(region_id);
	req->msg.schedule = cpu_to_le32(schedule);
	for (i = 0; i < 4; i++)
		req->msg.params[i] = cpu_to_le64(params ? params[i] : 0);
	init_completion(&req->done);
	sg_init_one(&out, &req->msg, sizeof(req->msg));
	sg_init_one(&in, &req->status, sizeof(req->status));
	sgs[0] = &out;
	sgs[1] = &in;

	mutex_lock(&dev->ctl_mutex);
	spin_lock_irqsave(&dev->lock, irqflags);
	err = virtqueue_add_sgs(dev->ctl_vq, sgs, 1, 1, req, GFP_ATOMIC);
	if (!err)
		virtqueue_kick(dev->ctl_vq);
	spin_unlock_irqrestore(&dev->lock, irqflags);
	if (err) {
		mutex_unlock(&dev->ctl_mutex);
		kfree(req);
		return err;
	}

	wait_for_completion_timeout(&req->done,
				    msecs_to_jiffies(release_timeout_ms));
	spin_lock_irqsave(&dev->lock, irqflags);
	if (!req->finished) {
		/* The device still owns the buffer: the callback frees it. */
		req->abandoned = true;
		req = NULL;
	}
	spin_unlock_irqrestore(&dev->lock, irqflags);
	mutex_unlock(&dev->ctl_mutex);
	if (!req) {
		dev_warn(&dev->vdev->dev, "ctl cmd %u region %u: no answer\n",
			 cmd, region_id);
		return -ETIMEDOUT;
	}
	*status = le32_to_cpu(req->status);
	kfree(req);
	return 0;
}

/* ------------------------------------------------------------ regions */

static struct dmapin_region *dmapin_find(struct dmapin_file *f, u32 id)
{
	struct dmapin_region *r;

	list_for_each_entry(r, &f->regions, node)
		if (r->id == id)
			return r;
	return NULL;
}

static bool dmapin_is_pin(u32 method)
{
	return method != DMAPIN_GUP && method != DMAPIN_GUP_FAST;
}

static u32 dmapin_inflight(struct dmapin_dev *dev, struct dmapin_region *r)
{
	unsigned long irqflags;
	u32 n;

	spin_lock_irqsave(&dev->lock, irqflags);
	n = r->inflight;
	spin_unlock_irqrestore(&dev->lock, irqflags);
	return n;
}

/* Forget the device's chains of @r: their tokens are freed on return. */
static void dmapin_orphan(struct dmapin_dev *dev, struct dmapin_region *r)
{
	struct dmapin_token *tok, *tmp;
	unsigned long irqflags;

	spin_lock_irqsave(&dev->lock, irqflags);
	list_for_each_entry_safe(tok, tmp, &r->tokens, node) {
		list_del_init(&tok->node);
		tok->region = NULL;
	}
	r->inflight = 0;
	spin_unlock_irqrestore(&dev->lock, irqflags);
}

/*
 * Get the region's chains back from the device.  Returns 0 when none is
 * in flight any more; -ETIMEDOUT (or the ctl error) otherwise, unless
 * @force, in which case leftover chains are orphaned.
 */
static int dmapin_reclaim(struct dmapin_dev *dev, struct dmapin_region *r,
			  bool force)
{
	u32 status = 0;
	int err = 0;

	down_read(&dev->rw);
	if (!dev->dead && dmapin_inflight(dev, r)) {
		err = dmapin_send_ctl(dev, VIRTIO_DMAPIN_CTL_RETURN, r->id, 0,
				      NULL, &status);
		if (!err && status)
			dev_warn(&dev->vdev->dev,
				 "RETURN region %u: device status %u\n",
				 r->id, status);
		wait_event_timeout(dev->wq, !dmapin_inflight(dev, r),
				   msecs_to_jiffies(release_timeout_ms));
		err = dmapin_inflight(dev, r) ? (err ?: -ETIMEDOUT) : 0;
	}
	up_read(&dev->rw);
	if (err && force) {
		pr_warn("dmapin: region %u: %u chains still at the device, releasing anyway\n",
			r->id, dmapin_inflight(dev, r));
		dmapin_orphan(dev, r);
		err = 0;
	}
	return err;
}

static void dmapin_unpin(struct dmapin_region *r, u32 how)
{
	unsigned long i;

	if (dmapin_is_pin(r->method)) {
		switch (how) {
		case DMAPIN_REL_DIRTY_LOCK:
			unpin_user_pages_dirty_lock(r->pages, r->npinned, true);
			break;
		case DMAPIN_REL_DIRTY_NOLOCK:
			for (i = 0; i < r->npinned; i++)
				set_page_dirty(r->pages[i]);
			unpin_user_pages(r->pages, r->npinned);
			break;
		default:
			unpin_user_pages(r->pages, r->npinned);
			break;
		}
		return;
	}
	for (i = 0; i < r->npinned; i++) {
		if (how == DMAPIN_REL_DIRTY_LOCK)
			set_page_dirty_lock(r->pages[i]);
		else if (how == DMAPIN_REL_DIRTY_NOLOCK)
			set_page_dirty(r->pages[i]);
		put_page(r->pages[i]);
	}
}

static void dmapin_free_region(struct dmapin_region *r)
{
	kvfree(r->pages);
	kfree(r);
}

/* Called with f->lock held. */
static int dmapin_release_region(struct dmapin_file *f,
				 struct dmapin_region *r, u32 how, bool force)
{
	int err = dmapin_reclaim(f->dev, r, force);

	if (err)
		return err;
	dmapin_unpin(r, how);
	list_del(&r->node);
	f->nregions--;
	dmapin_free_region(r);
	return 0;
}

/* ------------------------------------------------------------- ioctls */

static long dmapin_call_gup(u32 method, unsigned long addr,
			    unsigned long n, unsigned int gup, struct page **pages)
{
	struct mm_struct *mm = current->mm;
	long ret;

	switch (method) {
	case DMAPIN_GUP_FAST:
		return get_user_pages_fast(addr, n, gup, pages);
	case DMAPIN_PIN_FAST:
		return pin_user_pages_fast(addr, n, gup, pages);
	case DMAPIN_PIN_FAST_LONGTERM:
		return pin_user_pages_fast(addr, n, gup | FOLL_LONGTERM, pages);
	}

	if (!mm)
		return -EFAULT;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	if (method == DMAPIN_GUP)
		ret = get_user_pages(addr, n, gup, pages);
	else if (method == DMAPIN_PIN)
		ret = pin_user_pages(addr, n, gup, pages);
	else
		ret = pin_user_pages(addr, n, gup | FOLL_LONGTERM, pages);
#else
	if (method == DMAPIN_GUP)
		ret = get_user_pages(addr, n, gup, pages, NULL);
	else if (method == DMAPIN_PIN)
		ret = pin_user_pages(addr, n, gup, pages, NULL);
	else
		ret = pin_user_pages(addr, n, gup | FOLL_LONGTERM, pages, NULL);
#endif
	mmap_read_unlock(mm);
	return ret;
}

static int dmapin_ioc_pin(struct dmapin_file *f, struct dmapin_pin *p)
{
	struct dmapin_region *r;
	unsigned long n;
	unsigned int gup = 0;
	long ret;

	if (!p->len || p->len > DMAPIN_MAX_LEN ||
	    (p->addr | p->len) & ~PAGE_MASK ||
	    p->addr + p->len < p->addr || p->addr > ULONG_MAX - p->len ||
	    p->method > DMAPIN_PIN_FAST_LONGTERM || p->flags & ~DMAPIN_WRITE)
		return -EINVAL;
	if (f->nregions >= DMAPIN_MAX_REGIONS)
		return -ENOSPC;
	if (p->flags & DMAPIN_WRITE)
		gup |= FOLL_WRITE;
	n = p->len >> PAGE_SHIFT;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->pages = kvcalloc(n, sizeof(*r->pages), GFP_KERNEL);
	if (!r->pages) {
		kfree(r);
		return -ENOMEM;
	}
	INIT_LIST_HEAD(&r->tokens);
	r->method = p->method;
	r->flags = p->flags;
	r->addr = p->addr;
	r->npages = n;

	ret = dmapin_call_gup(p->method, p->addr, n, gup, r->pages);
	p->npages = n;
	p->region_id = 0;
	p->npinned = 0;
	p->err = 0;
	if (ret <= 0) {
		/* An error, or 0 pages (6.12's pin_user_pages on bad args). */
		p->err = ret;
		dmapin_free_region(r);
		return 0;
	}
	r->npinned = ret;
	do {
		r->id = atomic_inc_return(&f->dev->next_region_id);
	} while (!r->id);
	list_add_tail(&r->node, &f->regions);
	f->nregions++;
	p->region_id = r->id;
	p->npinned = ret;
	return 0;
}

static int dmapin_ioc_post(struct dmapin_file *f, struct dmapin_post *p)
{
	struct dmapin_dev *dev = f->dev;
	struct dmapin_region *r = dmapin_find(f, p->region_id);
	struct scatterlist hdr_sg, page_sg, st_sg, *sgs[3];
	struct dmapin_token *tok;
	unsigned long irqflags;
	u32 i;
	int err = 0;

	if (!r)
		return -ENOENT;
	if (dmapin_inflight(dev, r))
		return -EBUSY;
	down_read(&dev->rw);
	if (dev->dead) {
		up_read(&dev->rw);
		return -ENODEV;
	}
	p->posted = 0;
	for (i = 0; i < r->npinned; i++) {
		struct page *page = r->pages[i];

		tok = kzalloc(sizeof(*tok), GFP_KERNEL);
		if (!tok) {
			err = -ENOMEM;
			break;
		}
		tok->hdr.region_id = cpu_to_le32(r->id);
		tok->hdr.page_index = cpu_to_le32(i);
		tok->hdr.file_offset =
			cpu_to_le64(p->file_offset + ((u64)i << PAGE_SHIFT));
		tok->hdr.gpa = cpu_to_le64(page_to_phys(page));
		tok->region = r;
		sg_init_one(&hdr_sg, &tok->hdr, sizeof(tok->hdr));
		sg_init_table(&page_sg, 1);
		sg_set_page(&page_sg, page, PAGE_SIZE, 0);
		sg_init_one(&st_sg, &tok->st, sizeof(tok->st));
		sgs[0] = &hdr_sg;
		sgs[1] = &page_sg;
		sgs[2] = &st_sg;

		spin_lock_irqsave(&dev->lock, irqflags);
		err = virtqueue_add_sgs(dev->dma_vq, sgs, 1, 2, tok, GFP_ATOMIC);
		if (!err) {
			list_add_tail(&tok->node, &r->tokens);
			r->inflight++;
			r->posted++;
		}
		spin_unlock_irqrestore(&dev->lock, irqflags);
		if (err) {
			kfree(tok);
			break;
		}
		p->posted++;
	}
	if (p->posted) {
		spin_lock_irqsave(&dev->lock, irqflags);
		virtqueue_kick(dev->dma_vq);
		spin_unlock_irqrestore(&dev->lock, irqflags);
	}
	up_read(&dev->rw);
	if (err == -ENOMEM && !p->posted)
		return err;
	p->err = err;
	return 0;
}

static int dmapin_ioc_ctl(struct dmapin_file *f, u32 cmd, struct dmapin_ctl *c)
{
	struct dmapin_dev *dev = f->dev;
	u32 status = 0;
	int err;

	if (!dmapin_find(f, c->region_id))
		return -ENOENT;
	down_read(&dev->rw);
	err = dmapin_send_ctl(dev, cmd, c->region_id, c->schedule, c->params,
			      &status);
	up_read(&dev->rw);
	if (err == -ETIMEDOUT) {
		c->status = err;
		return 0;
	}
	if (err)
		return err;
	c->status = -(s32)status;
	return 0;
}

static int dmapin_ioc_query(struct dmapin_file *f, struct dmapin_query *q)
{
	struct dmapin_region *r = dmapin_find(f, q->region_id);
	unsigned long irqflags;
	u32 i;

	if (!r)
		return -ENOENT;
	memset(q, 0, sizeof(*q));
	q->region_id = r->id;
	q->method = r->method;
	q->flags = r->flags;
	q->npages = r->npages;
	q->npinned = r->npinned;
	q->addr = r->addr;
	spin_lock_irqsave(&f->dev->lock, irqflags);
	q->inflight = r->inflight;
	q->posted = r->posted;
	q->completed = r->completed;
	q->dma_writes = r->dma_writes;
	q->used_bytes = r->used_bytes;
	spin_unlock_irqrestore(&f->dev->lock, irqflags);
	/* We hold a reference on every page: reading its flags is safe. */
	for (i = 0; i < r->npinned; i++) {
		struct folio *folio = page_folio(r->pages[i]);

		q->nr_dirty += folio_test_dirty(folio);
		q->nr_writeback += folio_test_writeback(folio);
		q->nr_private += folio_test_private(folio);
		q->nr_no_mapping += !READ_ONCE(folio->mapping);
		q->nr_maybe_pinned += folio_maybe_dma_pinned(folio);
	}
	return 0;
}

static int dmapin_ioc_release(struct dmapin_file *f, struct dmapin_release *rel)
{
	struct dmapin_region *r;

	if (rel->method > DMAPIN_REL_NO_DIRTY)
		return -EINVAL;
	r = dmapin_find(f, rel->region_id);
	if (!r)
		return -ENOENT;
	return dmapin_release_region(f, r, rel->method, false);
}

static long dmapin_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	struct dmapin_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;
	union {
		struct dmapin_pin pin;
		struct dmapin_post post;
		struct dmapin_ctl ctl;
		struct dmapin_query query;
		struct dmapin_release rel;
	} u;
	unsigned int size = _IOC_SIZE(cmd);
	long ret;

	switch (cmd) {
	case DMAPIN_IOC_PIN:
	case DMAPIN_IOC_POST:
	case DMAPIN_IOC_START:
	case DMAPIN_IOC_STOP:
	case DMAPIN_IOC_QUERY:
	case DMAPIN_IOC_RELEASE:
		break;
	default:
		return -ENOTTY;
	}
	if (size > sizeof(u))
		return -EINVAL;
	if (copy_from_user(&u, uarg, size))
		return -EFAULT;

	mutex_lock(&f->lock);
	switch (cmd) {
	case DMAPIN_IOC_PIN:
		ret = dmapin_ioc_pin(f, &u.pin);
		break;
	case DMAPIN_IOC_POST:
		ret = dmapin_ioc_post(f, &u.post);
		break;
	case DMAPIN_IOC_START:
		ret = dmapin_ioc_ctl(f, VIRTIO_DMAPIN_CTL_START, &u.ctl);
		break;
	case DMAPIN_IOC_STOP:
		ret = dmapin_ioc_ctl(f, VIRTIO_DMAPIN_CTL_STOP, &u.ctl);
		break;
	case DMAPIN_IOC_QUERY:
		ret = dmapin_ioc_query(f, &u.query);
		break;
	default:
		ret = dmapin_ioc_release(f, &u.rel);
		break;
	}
	mutex_unlock(&f->lock);

	if (!ret && (_IOC_DIR(cmd) & _IOC_READ) &&
	    copy_to_user(uarg, &u, size))
		ret = -EFAULT;
	return ret;
}

static int dmapin_open(struct inode *inode, struct file *file)
{
	struct miscdevice *misc = file->private_data;
	struct dmapin_dev *dev = container_of(misc, struct dmapin_dev, misc);
	struct dmapin_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	INIT_LIST_HEAD(&f->regions);
	kref_get(&dev->ref);
	f->dev = dev;
	file->private_data = f;
	return 0;
}

static int dmapin_close(struct inode *inode, struct file *file)
{
	struct dmapin_file *f = file->private_data;
	struct dmapin_region *r, *tmp;

	mutex_lock(&f->lock);
	list_for_each_entry_safe(r, tmp, &f->regions, node)
		dmapin_release_region(f, r, DMAPIN_REL_DIRTY_LOCK, true);
	mutex_unlock(&f->lock);
	kref_put(&f->dev->ref, dmapin_dev_free);
	kfree(f);
	return 0;
}

static const struct file_operations dmapin_fops = {
	.owner		= THIS_MODULE,
	.open		= dmapin_open,
	.release	= dmapin_close,
	.unlocked_ioctl	= dmapin_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

/* -------------------------------------------------------- virtio glue */

static struct dmapin_dev *dmapin_dev_alloc(struct virtio_device *vdev)
{
	struct dmapin_dev *dev;

	/* Wire and ioctl ABI sizes, as documented in the uapi header. */
	BUILD_BUG_ON(sizeof(struct virtio_dmapin_buf_hdr) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmapin_buf_status) != 8);
	BUILD_BUG_ON(sizeof(struct virtio_dmapin_ctl) != 48);
	BUILD_BUG_ON(sizeof(struct dmapin_pin) != 40);
	BUILD_BUG_ON(sizeof(struct dmapin_post) != 24);
	BUILD_BUG_ON(sizeof(struct dmapin_ctl) != 48);
	BUILD_BUG_ON(sizeof(struct dmapin_query) != 88);
	BUILD_BUG_ON(sizeof(struct dmapin_release) != 8);

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return NULL;
	dev->vdev = vdev;
	spin_lock_init(&dev->lock);
	mutex_init(&dev->ctl_mutex);
	init_rwsem(&dev->rw);
	init_waitqueue_head(&dev->wq);
	kref_init(&dev->ref);
	dev->misc.minor = MISC_DYNAMIC_MINOR;
	dev->misc.name = "dmapin";
	dev->misc.fops = &dmapin_fops;
	dev->misc.mode = 0600;
	return dev;
}

static int dmapin_probe(struct virtio_device *vdev)
{
	struct virtqueue *vqs[2];
	struct dmapin_dev *dev;
	int err;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	struct virtqueue_info vqs_info[2] = {
		{ .name = "dma", .callback = dmapin_dma_done },
		{ .name = "ctl", .callback = dmapin_ctl_done },
	};
#else
	vq_callback_t *callbacks[2] = { dmapin_dma_done, dmapin_ctl_done };
	static const char * const names[2] = { "dma", "ctl" };
#endif

	mutex_lock(&dmapin_global_lock);
	if (dmapin_the_dev) {
		mutex_unlock(&dmapin_global_lock);
		dev_err(&vdev->dev, "only one dmapin device is supported\n");
		return -EBUSY;
	}

	dev = dmapin_dev_alloc(vdev);
	if (!dev) {
		err = -ENOMEM;
		goto out_unlock;
	}
	vdev->priv = dev;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	err = virtio_find_vqs(vdev, 2, vqs, vqs_info, NULL);
#else
	err = virtio_find_vqs(vdev, 2, vqs, callbacks, names, NULL);
#endif
	if (err)
		goto out_free;
	dev->dma_vq = vqs[VIRTIO_DMAPIN_VQ_DMA];
	dev->ctl_vq = vqs[VIRTIO_DMAPIN_VQ_CTL];
	virtio_device_ready(vdev);

	err = misc_register(&dev->misc);
	if (err)
		goto out_reset;
	dmapin_the_dev = dev;
	mutex_unlock(&dmapin_global_lock);
	dev_info(&vdev->dev, "dmapin: dma queue %u entries, /dev/dmapin\n",
		 virtqueue_get_vring_size(dev->dma_vq));
	return 0;

out_reset:
	virtio_reset_device(vdev);
	vdev->config->del_vqs(vdev);
out_free:
	vdev->priv = NULL;
	kfree(dev);
out_unlock:
	mutex_unlock(&dmapin_global_lock);
	return err;
}

static void dmapin_remove(struct virtio_device *vdev)
{
	struct dmapin_dev *dev = vdev->priv;
	struct dmapin_token *tok;
	struct dmapin_ctl_req *req;
	unsigned long irqflags;

	mutex_lock(&dmapin_global_lock);
	misc_deregister(&dev->misc);
	dmapin_the_dev = NULL;
	mutex_unlock(&dmapin_global_lock);

	down_write(&dev->rw);
	dev->dead = true;
	virtio_reset_device(vdev);
	spin_lock_irqsave(&dev->lock, irqflags);
	while ((tok = virtqueue_detach_unused_buf(dev->dma_vq)))
		dmapin_token_done(tok, 0);
	while ((req = virtqueue_detach_unused_buf(dev->ctl_vq))) {
		req->status = cpu_to_le32(ENODEV);
		dmapin_ctl_finish(req);
	}
	spin_unlock_irqrestore(&dev->lock, irqflags);
	vdev->config->del_vqs(vdev);
	up_write(&dev->rw);
	wake_up_all(&dev->wq);
	kref_put(&dev->ref, dmapin_dev_free);
}

/*
 * VIRTIO_ID_GPIO: under QEMU, pinvm's host device travels through QEMU's
 * vhost-user-gpio frontend (QEMU 7.2 has no generic vhost-user device; it is
 * the one frontend with two virtqueues and a backend-served config space).
 * The pinvm guest has no GPIO driver, so this driver is the only one to claim
 * it; the device behind it is pinvm's, whatever its ID says.
 */
static const struct virtio_device_id dmapin_id_table[] = {
	{ VIRTIO_ID_DMAPIN, VIRTIO_DEV_ANY_ID },
	{ VIRTIO_ID_GPIO, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver dmapin_driver = {
	.driver.name	= "virtio_dmapin",
	.id_table	= dmapin_id_table,
	.probe		= dmapin_probe,
	.remove		= dmapin_remove,
};

module_virtio_driver(dmapin_driver);

#ifdef CONFIG_VIRTIO_DMAPIN_NODEV
/*
 * Without a virtio-dmapin device, register /dev/dmapin anyway so that the
 * pin/query/release paths can be tested (e.g. under QEMU).  Runs after the
 * virtio drivers have probed, so a real device takes precedence.  The
 * device stays "dead": POST/START/STOP fail with -ENODEV.
 */
static int __init dmapin_nodev_init(void)
{
	struct dmapin_dev *dev;
	int err = 0;

	mutex_lock(&dmapin_global_lock);
	if (dmapin_the_dev)
		goto out;
	dev = dmapin_dev_alloc(NULL);
	if (!dev) {
		err = -ENOMEM;
		goto out;
	}
	dev->dead = true;
	err = misc_register(&dev->misc);
	if (err) {
		kfree(dev);
		goto out;
	}
	dmapin_the_dev = dev;
	pr_info("dmapin: no device, /dev/dmapin without DMA (NODEV test mode)\n");
out:
	mutex_unlock(&dmapin_global_lock);
	return err;
}
late_initcall(dmapin_nodev_init);
#endif
MODULE_DEVICE_TABLE(virtio, dmapin_id_table);
MODULE_DESCRIPTION("virtio-dmapin: DMA into pinned user pages (test driver)");
MODULE_LICENSE("GPL");
