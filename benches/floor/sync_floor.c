/*
 * sync_floor: the least an answered call's metadata costs to make durable,
 * as a yardstick for vmesh's CPU per short call (scripts/bench.sh, "call
 * set-up", the floors).
 *
 * vmesh makes an answered call survive a machine crash before it records
 * anything: the call's metadata (about 600 bytes) overwrites a spare file
 * of the same size and is synced (fdatasync), the file is renamed to the
 * call's name and the directory synced (fsync); when the caller hangs up
 * before leaving audio, the file is renamed back to a spare (not synced).
 * This program does exactly those system calls, --count times in a row on
 * --spares files in --dir (which must be on the file system measured),
 * one thread, nothing else, and reports its CPU (getrusage: user +
 * system), wall time and context switches per call as JSON (--report
 * FILE, or stdout).
 *
 *   gcc -O2 -Wall -Wextra -o sync_floor sync_floor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_BYTES 600

static void die(const char *what, const char *path) {
    fprintf(stderr, "sync_floor: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
    const char *dir = NULL, *report = NULL;
    long count = 2000, spares = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--count")) count = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--spares")) spares = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--report")) report = argv[i + 1];
        else {
            fprintf(stderr, "sync_floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!dir || count < 1 || spares < 1 || spares > 1000) {
        fprintf(stderr, "usage: sync_floor --dir DIR [--count N] [--spares N] [--report FILE]\n");
        return 2;
    }
    if (mkdir(dir, 0755) && errno != EEXIST) die("mkdir", dir);
    char meta[META_BYTES];
    memset(meta, 'm', sizeof meta);
    char spare[4096], live[4096];
    /* The spares exist and are durable before the clock starts, as vmesh's
     * are once it has served a few calls. */
    for (long s = 0; s < spares; s++) {
        snprintf(spare, sizeof spare, "%s/%ld.spare", dir, s);
        int fd = open(spare, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("create", spare);
        if (pwrite(fd, meta, sizeof meta, 0) != (ssize_t)sizeof meta) die("write", spare);
        if (fsync(fd)) die("fsync", spare);
        close(fd);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) die("open", dir);
    if (fsync(dfd)) die("fsync", dir);

    struct rusage r0, r1;
    struct timespec t0, t1;
    getrusage(RUSAGE_SELF, &r0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) {
        long s = i % spares;
        snprintf(spare, sizeof spare, "%s/%ld.spare", dir, s);
        snprintf(live, sizeof live, "%s/%ld.json", dir, s);
        /* The answer: overwrite the spare, sync its data, rename, sync the
         * directory. */
        int fd = open(spare, O_WRONLY | O_CLOEXEC);
        if (fd < 0) die("open", spare);
        meta[0] = (char)('a' + i % 26);
        if (pwrite(fd, meta, sizeof meta, 0) != (ssize_t)sizeof meta) die("write", spare);
        if (fdatasync(fd)) die("fdatasync", spare);
        close(fd);
        if (rename(spare, live)) die("rename", spare);
        if (fsync(dfd)) die("fsync", dir);
        /* The hang-up: the spent file goes back to the spares. */
        if (rename(live, spare)) die("rename", live);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &r1);
    if (fsync(dfd)) die("fsync", dir);
    close(dfd);

    double user = seconds(r1.ru_utime) - seconds(r0.ru_utime);
    double sys = seconds(r1.ru_stime) - seconds(r0.ru_stime);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    FILE *out = report ? fopen(report, "w") : stdout;
    if (!out) die("open", report);
    fprintf(out,
            "{\"count\": %ld, \"cpu_ms_per_call\": %.4f, \"user_ms_per_call\": %.4f, "
            "\"sys_ms_per_call\": %.4f, \"wall_ms_per_call\": %.4f, \"voluntary_switches_per_call\": %.2f, "
            "\"involuntary_switches_per_call\": %.2f}\n",
            count, (user + sys) * 1000 / count, user * 1000 / count, sys * 1000 / count, wall * 1000 / count,
            (double)(r1.ru_nvcsw - r0.ru_nvcsw) / count, (double)(r1.ru_nivcsw - r0.ru_nivcsw) / count);
    if (report) fclose(out);
    return 0;
}
