/*
 * sysmem.c - lp_sysmem_available (sysmem.h): /proc/meminfo, the cgroup v2
 * limit, sysconf.
 */
#include "core/sysmem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first number of a one-line file (cgroup files), or false ("max", absent). */
static bool read_u64(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[64];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok) return false;
    char *end = NULL;
    unsigned long long v = strtoull(line, &end, 10);
    if (end == line || (*end && *end != '\n')) return false;
    *out = (uint64_t)v;
    return true;
}

bool lp_sysmem_available(size_t *bytes, char *source, size_t n) {
    uint64_t avail = 0;
    bool known = false;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (uint64_t)kb * 1024;
                known = true;
                snprintf(source, n, "MemAvailable in /proc/meminfo");
                break;
            }
        fclose(f);
    }
    if (!known) {
        const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) {
            avail = (uint64_t)pages * (uint64_t)psz;
            known = true;
            snprintf(source, n, "physical memory (sysconf)");
        }
    }
    /* a cgroup v2 limit (containers, systemd slices) can be far below the machine's */
    uint64_t max, cur;
    if (read_u64("/sys/fs/cgroup/memory.max", &max) && read_u64("/sys/fs/cgroup/memory.current", &cur)) {
        const uint64_t room = max > cur ? max - cur : 0;
        if (!known || room < avail) {
            avail = room;
            known = true;
            snprintf(source, n, "the cgroup's memory.max less its memory.current");
        }
    }
    if (known) *bytes = avail > SIZE_MAX ? SIZE_MAX : (size_t)avail;
    return known;
}
