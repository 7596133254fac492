/*
 * sysmem.h - how much memory this machine can still give a process.
 *
 * What: lp_sysmem_available() estimates the bytes a new allocation can use
 *   without swapping or being killed: the kernel's MemAvailable
 *   (/proc/meminfo), lowered to the room left under a cgroup v2 limit
 *   (memory.max - memory.current) when the process runs in one; without
 *   /proc, the physical memory (sysconf _SC_PHYS_PAGES).
 * Why: long runs estimate what they will hold (the calibration pipeline,
 *   quant/pipeline.c) and refuse up front rather than grow until the machine
 *   thrashes or the OOM killer ends them hours in.
 * Design: read-only, no caching (memory changes between calls); the source
 *   of the figure is returned for messages.
 */
#ifndef LP_SYSMEM_H
#define LP_SYSMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes available, and in `source` (n bytes) where the figure comes from
 * ("MemAvailable in /proc/meminfo", ...). false when nothing is known. */
bool lp_sysmem_available(size_t *bytes, char *source, size_t n);

#endif
