#!/usr/bin/env python3
"""Make a synthetic kernel git history with a planted pin-handling bug, to test `pinvm bisect`.

    ci/bisect-history.py OUT_DIR [--commits N] [--tarball PATH]

OUT_DIR becomes a git repository: a base commit holding Debian's linux-source-6.12 tree, then
N small commits (default 16) touching mm/ and fs/. One of them, "mm/madvise: drop the buffers
of clean file folios before pageout reclaim", is a realistic bug invented for this test:
MADV_PAGEOUT releases the buffer heads of clean file folios itself, before reclaim_pages(), and
so bypasses the check in shrink_folio_list() that keeps the private data of DMA-pinned folios
(d824ec2a1546). A FOLL_PIN'd ext4 page then loses its buffers; when the device's data is
dirtied on unpin, ext4_dirty_folio() warns and writeback skips the page: scenario S3-control
(S03b) on ext4 finds kernel_warning + lost_write. The commit is tagged `planted-bug` so a test
can compare; `pinvm bisect` is never told.

Commits have fixed authors and dates, so the same tarball gives the same commit ids.
"""

import argparse
import os
import subprocess
import sys

BUG_SUBJECT = "mm/madvise: drop the buffers of clean file folios before pageout reclaim"

BUG_BODY = """\
MADV_PAGEOUT hands the folios it isolated to reclaim_pages(), which for a
clean file folio with buffer heads has to lock it, try to release the
buffers and only then free it.  The caller asked for exactly this, so do
the cheap part up front: release the private data of the clean, unlocked
file folios on the list before handing them to reclaim.
"""

BUG_HELPER = """\
/*
 * Clean file folios picked for pageout usually keep only their buffer heads
 * alive: drop those now, since the caller asked for the folios to go, so that
 * reclaim_pages() finds them ready to free.
 */
static void madvise_release_clean_file_folios(struct list_head *folio_list)
{
\tstruct folio *folio;

\tlist_for_each_entry(folio, folio_list, lru) {
\t\tif (folio_test_anon(folio) || folio_test_dirty(folio) ||
\t\t    folio_test_writeback(folio) || !folio_needs_release(folio))
\t\t\tcontinue;
\t\tif (!folio_trylock(folio))
\t\t\tcontinue;
\t\tif (folio->mapping)
\t\t\tfilemap_release_folio(folio, 0);
\t\tfolio_unlock(folio);
\t}
}

static int madvise_cold_or_pageout_pte_range(pmd_t *pmd,"""

# (file, anchor text that must occur exactly once, replacement, subject, body)
BENIGN = [
    ("mm/gup.c", "int __must_check try_grab_folio(",
     "/* Takes @refs references (FOLL_GET) or pins (FOLL_PIN) on @folio. */\n"
     "int __must_check try_grab_folio(",
     "mm/gup: say what try_grab_folio() takes in one line", ""),
    ("fs/ext4/inode.c", "static bool ext4_dirty_folio(",
     "/* Dirtying a folio needs its buffers: they carry the block mapping. */\n"
     "static bool ext4_dirty_folio(",
     "ext4: note why ext4_dirty_folio() wants buffers", ""),
    ("mm/filemap.c", "bool filemap_release_folio(",
     "/* Called with the folio locked; see the kernel-doc above. */\n"
     "bool filemap_release_folio(",
     "mm/filemap: remind callers of filemap_release_folio() to lock", ""),
    ("mm/page-writeback.c", "bool folio_clear_dirty_for_io(",
     "/* The caller holds the folio lock. */\nbool folio_clear_dirty_for_io(",
     "mm/page-writeback: document the lock folio_clear_dirty_for_io() needs", ""),
    ("mm/vmscan.c", "unsigned long reclaim_pages(",
     "/* Reclaims the isolated folios on @folio_list (MADV_PAGEOUT). */\n"
     "unsigned long reclaim_pages(",
     "mm/vmscan: say who calls reclaim_pages()", ""),
    ("fs/btrfs/extent_io.c", "static int extent_write_cache_pages(",
     "/* btrfs' own writeback loop: it does not use write_cache_pages(). */\n"
     "static int extent_write_cache_pages(",
     "btrfs: note that extent_write_cache_pages() is btrfs' own loop", ""),
    ("mm/truncate.c", "long mapping_evict_folio(",
     "/* Returns 1 when the folio was removed from the page cache. */\n"
     "long mapping_evict_folio(",
     "mm/truncate: state mapping_evict_folio()'s return value", ""),
    ("fs/iomap/buffered-io.c", "bool iomap_release_folio(",
     "/* Frees the iomap_folio_state of a clean folio. */\n"
     "bool iomap_release_folio(",
     "iomap: summarise iomap_release_folio()", ""),
    ("fs/ext4/page-io.c", "int ext4_bio_write_folio(",
     "/* Submits the folio's dirty, mapped buffers for writeback. */\n"
     "int ext4_bio_write_folio(",
     "ext4: summarise ext4_bio_write_folio()", ""),
    ("mm/rmap.c", "int folio_mkclean(",
     "/* Write-protects every mapping of @folio and clears its dirty PTEs. */\n"
     "int folio_mkclean(",
     "mm/rmap: summarise folio_mkclean()", ""),
    ("mm/swap.c", "void folio_deactivate(",
     "/* Moves @folio to the inactive list (MADV_COLD). */\nvoid folio_deactivate(",
     "mm/swap: say who deactivates folios", ""),
    ("fs/buffer.c", "bool try_to_free_buffers(",
     "/* The folio must be locked. */\nbool try_to_free_buffers(",
     "fs/buffer: document try_to_free_buffers()' locking", ""),
    ("mm/memory.c", "static vm_fault_t do_wp_page(",
     "/* The write-protect fault: copy on write, or reuse the page. */\n"
     "static vm_fault_t do_wp_page(",
     "mm/memory: summarise do_wp_page()", ""),
    ("fs/ext4/inode.c", "static bool ext4_release_folio(",
     "/* jbd2 decides whether the buffers can go. */\nstatic bool ext4_release_folio(",
     "ext4: note who decides in ext4_release_folio()", ""),
    ("mm/madvise.c", "static long madvise_pageout(",
     "/* MADV_PAGEOUT: reclaim the range now. */\nstatic long madvise_pageout(",
     "mm/madvise: summarise madvise_pageout()", ""),
]

BUG = [
    ("mm/madvise.c", "static int madvise_cold_or_pageout_pte_range(pmd_t *pmd,", BUG_HELPER),
    ("mm/madvise.c", "\tif (pageout)\n\t\treclaim_pages(&folio_list);\n\tcond_resched();\n\n\treturn 0;",
     "\tif (pageout) {\n\t\tmadvise_release_clean_file_folios(&folio_list);\n"
     "\t\treclaim_pages(&folio_list);\n\t}\n\tcond_resched();\n\n\treturn 0;"),
]


def git(repo, *args, date=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="pinvm history", GIT_AUTHOR_EMAIL="history@pinvm",
               GIT_COMMITTER_NAME="pinvm history", GIT_COMMITTER_EMAIL="history@pinvm")
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", "-C", repo, *args], check=True, env=env,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def replace_once(repo, path, old, new):
    full = os.path.join(repo, path)
    with open(full, encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    n = text.count(old)
    if n != 1:
        sys.exit(f"{path}: expected the anchor once, found it {n} times: {old[:60]!r}")
    with open(full, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text.replace(old, new))


def commit(repo, i, subject, body):
    date = f"2026-01-01T00:{i:02d}:00Z"
    git(repo, "commit", "-q", "-a", "-m", subject + ("\n\n" + body if body else ""), date=date)
    return git(repo, "rev-parse", "HEAD")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--commits", type=int, default=16, help="commits after the base (2..16)")
    ap.add_argument("--tarball", default="/usr/src/linux-source-6.12.tar.xz")
    a = ap.parse_args()
    if not 2 <= a.commits <= len(BENIGN) + 1:
        sys.exit(f"--commits {a.commits}: expected 2..{len(BENIGN) + 1}")
    if os.path.exists(a.out) and os.listdir(a.out):
        sys.exit(f"{a.out} exists and is not empty")
    if not os.path.exists(a.tarball):
        sys.exit(f"{a.tarball} is missing: apt-get install linux-source-6.12")
    os.makedirs(a.out, exist_ok=True)
    subprocess.run(["tar", "-xf", a.tarball, "-C", a.out, "--strip-components=1"], check=True)
    git(a.out, "init", "-q")
    git(a.out, "config", "gc.auto", "0")
    # Debian's .gitignore ignores everything at the top (its packaging): add by force.
    git(a.out, "add", "-A", "-f")
    commit(a.out, 0, "base: Debian linux-source-6.12", "")
    # The bug lands about two thirds of the way in.
    bug_at = max(1, (a.commits * 2) // 3)
    benign = iter(BENIGN)
    for i in range(1, a.commits + 1):
        if i == bug_at:
            for path, old, new in BUG:
                replace_once(a.out, path, old, new)
            sha = commit(a.out, i, BUG_SUBJECT, BUG_BODY)
            git(a.out, "tag", "planted-bug", sha)
        else:
            path, old, new, subject, body = next(benign)
            replace_once(a.out, path, old, new)
            commit(a.out, i, subject, body)
    print(f"history: {a.out}: {a.commits} commits after base; planted bug "
          f"{git(a.out, 'rev-parse', 'planted-bug')} ({BUG_SUBJECT})")
    print(f"good: {git(a.out, 'rev-list', '--max-parents=0', 'HEAD')}  bad: HEAD")


if __name__ == "__main__":
    main()
