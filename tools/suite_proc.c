/*
 * suite_proc.c - child processes of `llmpress suite` (suite_proc.h).
 *
 * What: fork + exec of one command with redirected output, wait4 for its
 *       exit and rusage, and the SIGINT/SIGTERM handling that stops it.
 * Why:  the suite must stop within moments of Ctrl-C or a `kill`, leaving
 *       every finished cell and no half-written file, and it must survive
 *       any child's crash.
 * Design: the handler only counts the signal and kill()s the child whose
 *       pid it finds in g_child (both async-signal-safe). The children stay
 *       in our process group, so a terminal's Ctrl-C reaches them directly
 *       as well; the forwarded SIGTERM covers a signal sent to the suite
 *       alone. In the child, between fork and exec, only async-signal-safe
 *       calls are made and it leaves with _exit: never exit(), whose atexit
 *       handlers would remove the parent's temporary files.
 */
#include "suite_proc.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t g_stops;  /* signals received */
static volatile sig_atomic_t g_signal; /* the first one */
static volatile sig_atomic_t g_child;  /* pid of the running child, 0 when none */

static void on_stop(int sig) {
    const int saved = errno;
    if (!g_signal) g_signal = sig;
    g_stops++;
    const pid_t c = (pid_t)g_child;
    if (c > 0) kill(c, g_stops > 1 ? SIGKILL : SIGTERM);
    errno = saved;
}

void suite_proc_signals(void) {
    const int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue; /* nohup, & */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: a wait returns EINTR and is retried by us */
        sigaction(sigs[i], &sa, NULL);
    }
}

int suite_proc_stop_signal(void) { return g_stops ? (int)g_signal : 0; }

/* In the child: redirect, restore the signals, exec. Never returns. */
static void child_exec(char *const argv[], int out_fd, int err_fd, const sigset_t *old_mask) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    const int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0) dup2(in, 0), close(in);
    if (out_fd >= 0 && out_fd != 1) dup2(out_fd, 1);
    if (err_fd >= 0 && err_fd != 2) dup2(err_fd, 2);
    execvp(argv[0], argv); /* a path is used as it is; "git" is looked up in PATH */
    /* only async-signal-safe calls here: write, _exit */
    static const char msg[] = "llmpress suite: could not start a child process (exec failed)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

/* fork with SIGINT/SIGTERM blocked; the parent records the pid before they
 * can be delivered, so the handler always knows whom to stop. */
static pid_t start(char *const argv[], int out_fd, int err_fd) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    fflush(NULL); /* nothing buffered is written twice */
    const pid_t pid = fork();
    if (pid == 0) child_exec(argv, out_fd, err_fd, &old);
    const int e = errno;
    if (pid > 0) {
        g_child = pid;
        if (g_stops) kill(pid, SIGTERM); /* a stop that came just before */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return pid;
}

/* Wait for the child, retrying interrupted waits; fills r. */
static void finish(pid_t pid, double t0, suite_proc_result *r) {
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    g_child = 0;
    r->seconds = cli_now() - t0;
    r->peak_rss_bytes = (int64_t)ru.ru_maxrss * 1024; /* Linux: kilobytes */
    if (WIFSIGNALED(status)) {
        r->signal = WTERMSIG(status);
        r->exit_code = 128 + r->signal;
    } else {
        r->signal = 0;
        r->exit_code = WEXITSTATUS(status);
    }
}

int suite_proc_run(char *const argv[], int out_fd, int err_fd, suite_proc_result *r) {
    memset(r, 0, sizeof *r);
    const double t0 = cli_now();
    const pid_t pid = start(argv, out_fd, err_fd);
    if (pid < 0) return -1;
    finish(pid, t0, r);
    return 0;
}

bool suite_proc_capture(char *const argv[], char *buf, size_t n) {
    int p[2];
    buf[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    const pid_t pid = start(argv, p[1], devnull);
    close(p[1]);
    if (devnull >= 0) close(devnull);
    if (pid < 0) {
        close(p[0]);
        return false;
    }
    /* read to the end before waiting: the child never blocks on a full pipe */
    size_t k = 0;
    char scratch[256];
    for (;;) {
        char *dst = k + 1 < n ? buf + k : scratch;
        const size_t room = k + 1 < n ? n - 1 - k : sizeof scratch;
        const ssize_t got = read(p[0], dst, room);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        if (dst == buf + k) k += (size_t)got;
    }
    buf[k] = '\0';
    close(p[0]);
    suite_proc_result r;
    finish(pid, cli_now(), &r);
    return r.exit_code == 0;
}

char *suite_proc_self(void) {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || n >= (ssize_t)sizeof buf - 1) return NULL;
    buf[n] = '\0';
    return strdup(buf);
}
