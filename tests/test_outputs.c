/* The one writer (formats/files.c, tempo_atomic_open / tempo_atomic_close)
 * behind every file tempo writes: regular files through a temporary name and
 * a rename, devices and FIFOs in place, write errors as one line and no
 * partial file. The commands are run as a user runs them. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MODEL_FLAGS "-m " WEIGHTS_DIR "/stories260K.bin -z " WEIGHTS_DIR "/tok512.bin"
#define PROMPT "-p 'Once upon a time'"

/* Every command-line flag that writes a file, `%s` where its path goes
 * (`TRACE` is replaced by a trace tempo wrote first). */
static const char *const writers[] = {
    "forward " MODEL_FLAGS " " PROMPT " --out %s",
    "generate " MODEL_FLAGS " " PROMPT " -n 4 --trace %s",
    "generate " MODEL_FLAGS " " PROMPT " -n 4 --json %s",
    "generate " MODEL_FLAGS " " PROMPT " -n 4 --svg-tree %s",
    "compare " MODEL_FLAGS " " PROMPT " -n 4 --json %s",
    "attention " MODEL_FLAGS " " PROMPT " --trace %s",
    "attention " MODEL_FLAGS " " PROMPT " --svg-pair %s",
    "attention TRACE " MODEL_FLAGS " --svg %s",
    "attention TRACE " MODEL_FLAGS " --svg-grid %s",
    "attention TRACE " MODEL_FLAGS " --json %s",
    "audit -m " WEIGHTS_DIR "/stories260K.bin TRACE --json %s",
    "synth --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab 32 --seq-len 8 --out %s",
    "synth --format gguf --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab 364 --seq-len 8 --out %s",
    "convert " WEIGHTS_DIR "/stories260K.bin " WEIGHTS_DIR "/tok512.bin --out %s",
};
enum { N_WRITERS = sizeof writers / sizeof writers[0] };

static void make_temp_dir(char dir[64]) {
    scratch_path("outputs", dir, 64);
    cr_assert(mkdir(dir, 0700) == 0, "cannot make %s: %s", dir, strerror(errno));
}

static void remove_tree(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert(system(cmd) == 0);
}

/* Names in `dir` other than `.`/`..`; the first one to `first`. */
static int count_entries(const char *dir, char first[256]) {
    DIR *d = opendir(dir);
    cr_assert(d, "cannot list %s", dir);
    int n = 0;
    first[0] = '\0';
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n++ == 0) snprintf(first, 256, "%s", e->d_name);
    closedir(d);
    return n;
}

/* `tempo COMMAND` with TRACE and %s filled in; returns the exit status, stderr to `text`. */
static int run_writer(const char *command, const char *trace, const char *path, char *text, size_t len) {
    char filled[2048], cmd[4096];
    const char *at = strstr(command, "TRACE");
    if (at) snprintf(filled, sizeof filled, "%.*s%s%s", (int)(at - command), command, trace, at + 5);
    else snprintf(filled, sizeof filled, "%s", command);
    char args[2048];
    snprintf(args, sizeof args, filled, path);
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    return run_command(cmd, text, len);
}

static void require_root(void) {
    if (geteuid() != 0) cr_skip_test("needs root (mknod, mount), as CI and containers run");
}

Test(outputs, a_device_stays_a_device_after_every_command_that_writes) {
    require_root();
    char dir[64], dev[128], reg[128], trace[128], text[8192], first[256];
    make_temp_dir(dir);
    snprintf(dev, sizeof dev, "%s/null", dir);
    snprintf(trace, sizeof trace, "%s.trace", dir);
    cr_assert(mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod: %s", strerror(errno));
    cr_assert(run_writer(writers[1], trace, trace, text, sizeof text) == 0, "%s", text);
    for (int i = 0; i < N_WRITERS; i++) {
        snprintf(reg, sizeof reg, "%s/regular", dir); /* the same flag writes a file when given a name */
        cr_assert(run_writer(writers[i], trace, reg, text, sizeof text) == 0, "tempo %s: %s", writers[i], text);
        struct stat st;
        cr_assert(stat(reg, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0, "tempo %s wrote no file", writers[i]);
        unlink(reg);
        cr_assert(run_writer(writers[i], trace, dev, text, sizeof text) == 0, "tempo %s on a device: %s", writers[i], text);
        cr_assert(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
                  "tempo %s replaced the device %s", writers[i], dev);
        cr_assert_eq(count_entries(dir, first), 1, "tempo %s left a file beside the device", writers[i]);
    }
    unlink(trace);
    remove_tree(dir);
}

/* Fills the file system of `dir` with `dir`/filler until it has no space left. */
static void fill(const char *dir) {
    char path[128], block[4096] = {0};
    snprintf(path, sizeof path, "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert(fd >= 0);
    while (write(fd, block, sizeof block) > 0) continue;
    cr_assert_eq(errno, ENOSPC, "filling %s stopped with %s", dir, strerror(errno));
    close(fd);
}

Test(outputs, a_full_file_system_gives_one_line_and_no_partial_file) {
    require_root();
    char dir[64], old[128], fresh[128], args[1024], text[8192];
    make_temp_dir(dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=256k") != 0) cr_skip_test("mount tmpfs: %s", strerror(errno));
    snprintf(old, sizeof old, "%s/old.st", dir);
    snprintf(fresh, sizeof fresh, "%s/new.st", dir);
    FILE *f = fopen(old, "w");
    fputs("the previous trace\n", f);
    fclose(f);
    fill(dir);
    snprintf(args, sizeof args, "forward " MODEL_FLAGS " " PROMPT " --out %s", old);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc_old = run_command(cmd, text, sizeof text);
    char text_old[8192];
    snprintf(text_old, sizeof text_old, "%s", text);
    snprintf(cmd, sizeof cmd, "%s forward " MODEL_FLAGS " " PROMPT " --out %s", TEMPO_BIN, fresh);
    int rc_new = run_command(cmd, text, sizeof text);
    char *kept = read_text_file(old, NULL), first[256];
    int entries = count_entries(dir, first); /* old.st and filler: no new.st, no temporary file */
    umount(dir);
    rmdir(dir);
    cr_assert_eq(rc_old, 1, "replacing a file on a full disk exited %d: %s", rc_old, text_old);
    cr_assert(strstr(text_old, "No space left on device") && strchr(text_old, '\n') == text_old + strlen(text_old) - 1,
              "one line naming the reason, got: %s", text_old);
    cr_assert_eq(rc_new, 1, "a new file on a full disk exited %d: %s", rc_new, text);
    cr_assert(strstr(text, "No space left on device"), "%s", text);
    cr_assert_str_eq(kept, "the previous trace\n", "the old file was damaged");
    cr_assert_eq(entries, 2, "a partial or temporary file was left (%d entries)", entries);
    free(kept);
}

Test(outputs, a_symlink_to_dev_full_gives_one_line_and_stays_a_symlink) {
    char dir[64], link[128], args[1024];
    make_temp_dir(dir);
    snprintf(link, sizeof link, "%s/full", dir);
    cr_assert(symlink("/dev/full", link) == 0);
    snprintf(args, sizeof args, "forward " MODEL_FLAGS " " PROMPT " --out %s", link);
    expect_error(args, 1, "No space left on device", NULL);
    char target[64] = {0};
    struct stat st;
    cr_assert(readlink(link, target, sizeof target - 1) > 0 && strcmp(target, "/dev/full") == 0, "the link was replaced");
    cr_assert(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode), "/dev/full is no longer a device");
    remove_tree(dir);
}

/* A child that opens `fifo`, reads at most `limit` bytes to `out`, and exits. */
static pid_t fifo_reader(const char *fifo, const char *out, size_t limit) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid > 0) return pid;
    alarm(30); /* a writer that never opens the FIFO (replaced it) must not leave the reader waiting */
    int in = open(fifo, O_RDONLY), to = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[4096];
    size_t total = 0;
    for (ssize_t got; total < limit && (got = read(in, buf, limit - total < sizeof buf ? limit - total : sizeof buf)) > 0;)
        total += (size_t)(write(to, buf, (size_t)got) == got ? got : 0);
    _exit(in >= 0 && to >= 0 ? 0 : 1);
}

Test(outputs, a_fifo_gets_the_bytes_in_place_and_stays_a_fifo) {
    char dir[64], fifo[128], got[128], regular[128], cmd[2048], text[8192];
    make_temp_dir(dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(got, sizeof got, "%s/got", dir);
    snprintf(regular, sizeof regular, "%s/regular.st", dir);
    cr_assert(mkfifo(fifo, 0644) == 0);
    pid_t reader = fifo_reader(fifo, got, (size_t)-1);
    snprintf(cmd, sizeof cmd, "%s forward " MODEL_FLAGS " " PROMPT " --threads 1 --out %s", TEMPO_BIN, fifo);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "%s", text);
    int status;
    waitpid(reader, &status, 0);
    snprintf(cmd, sizeof cmd, "%s forward " MODEL_FLAGS " " PROMPT " --threads 1 --out %s", TEMPO_BIN, regular);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "%s", text);
    size_t n_got, n_regular;
    char *a = read_text_file(got, &n_got), *b = read_text_file(regular, &n_regular);
    cr_assert(n_got == n_regular && memcmp(a, b, n_got) == 0, "the FIFO got %zu bytes, the file %zu, or other bytes", n_got,
              n_regular);
    struct stat st;
    cr_assert(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    free(a);
    free(b);
    remove_tree(dir);
}

Test(outputs, a_reader_that_leaves_gives_one_line_not_a_silent_death) {
    char dir[64], fifo[128], got[128], args[1024];
    make_temp_dir(dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(got, sizeof got, "%s/got", dir);
    cr_assert(mkfifo(fifo, 0644) == 0);
    /* 468 kB of checkpoint: more than a pipe holds, so tempo is still writing when the reader leaves */
    pid_t reader = fifo_reader(fifo, got, 1);
    snprintf(args, sizeof args, "synth --dim 64 --hidden 128 --layers 2 --heads 2 --kv-heads 2 --vocab 512 --seq-len 64 --out %s",
             fifo);
    expect_error(args, 1, "Broken pipe", NULL);
    int status;
    waitpid(reader, &status, 0);
    struct stat st;
    cr_assert(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    remove_tree(dir);
}

Test(outputs, a_symlink_to_a_file_keeps_the_link_and_replaces_the_target) {
    char dir[64], target[128], link[128], cmd[2048], text[8192];
    make_temp_dir(dir);
    snprintf(target, sizeof target, "%s/target.json", dir);
    snprintf(link, sizeof link, "%s/link.json", dir);
    FILE *f = fopen(target, "w");
    fputs("old", f);
    fclose(f);
    cr_assert(chmod(target, 0640) == 0 && symlink("target.json", link) == 0);
    snprintf(cmd, sizeof cmd, "%s generate " MODEL_FLAGS " " PROMPT " -n 2 --json %s", TEMPO_BIN, link);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "%s", text);
    struct stat st;
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the symlink was replaced by a file");
    cr_assert(lstat(target, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640, "the target lost its mode");
    cJSON *json = read_json_file(target);
    cr_assert(json != NULL, "the target does not hold the new JSON");
    cJSON_Delete(json);
    char first[256];
    cr_assert_eq(count_entries(dir, first), 2, "a temporary file was left");
    remove_tree(dir);
}

Test(outputs, a_symlink_to_nothing_is_refused) {
    char dir[64], link[128], missing[128], args[1024];
    make_temp_dir(dir);
    snprintf(link, sizeof link, "%s/link.st", dir);
    snprintf(missing, sizeof missing, "%s/missing.st", dir);
    cr_assert(symlink("missing.st", link) == 0);
    snprintf(args, sizeof args, "forward " MODEL_FLAGS " " PROMPT " --out %s", link);
    expect_error(args, 1, "a symbolic link to a missing file", missing);
    remove_tree(dir);
}

Test(outputs, dev_stdout_into_a_pipe_gets_the_bytes) {
    char dir[64], piped[128], regular[128], cmd[2048], text[8192];
    make_temp_dir(dir);
    snprintf(piped, sizeof piped, "%s/piped", dir);
    snprintf(regular, sizeof regular, "%s/regular", dir);
    const char *synth = "synth --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab 32 --seq-len 8 --out";
    snprintf(cmd, sizeof cmd, "(%s %s /dev/stdout | cat > %s)", TEMPO_BIN, synth, piped);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "%s", text);
    snprintf(cmd, sizeof cmd, "%s %s %s", TEMPO_BIN, synth, regular);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "%s", text);
    size_t n_piped, n_regular;
    char *a = read_text_file(piped, &n_piped), *b = read_text_file(regular, &n_regular);
    cr_assert(n_piped == n_regular && memcmp(a, b, n_piped) == 0, "the pipe got %zu bytes, the file %zu", n_piped, n_regular);
    free(a);
    free(b);
    remove_tree(dir);
}
