#define _GNU_SOURCE
#include "rag_spawn.h"
#include <fcntl.h>
#include <unistd.h>

int rag_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int rag_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *directory) {
    return posix_spawn_file_actions_addchdir_np(actions, directory);
}

int rag_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
